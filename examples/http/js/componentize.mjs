// componentize.mjs - componentize-js with the host filesystem visible to its bundled tools.
// componentize-js 0.22 runs its WIT splicer through @bytecodealliance/preview2-shim, which starts
// with no preopened directory, so every WIT path fails with "No such file or directory (os error
// 44)"; preopening "/" first fixes it. Run it from the npm tools folder (build.sh copies it there).
// usage: node componentize.mjs APP.js WIT_DIR WORLD OUT.wasm
import { _setPreopens } from "@bytecodealliance/preview2-shim/filesystem";
import { writeFile } from "node:fs/promises";

_setPreopens({ "/": "/" });
const { componentize } = await import("@bytecodealliance/componentize-js");
const [sourcePath, witPath, worldName, out] = process.argv.slice(2);
const { component } = await componentize({ sourcePath, witPath, worldName });
await writeFile(out, component);
