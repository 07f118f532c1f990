// An embedding plugin in AssemblyScript (see ../plugins.py): `greet(name) -> string`. It asks the
// host how many times it has seen the name through the imported `env.visits`. AssemblyScript
// strings are UTF-16, so the UTF-8 bytes the host passes are decoded on the way in and encoded on
// the way out. Compiled with `--runtime stub` (allocate only, never collect, which suits a short
// call) and `--use abort=` (so the module imports nothing but `env.visits`).

// @ts-ignore: decorator
@external("env", "visits")
declare function visits(name: usize, length: usize): i32;

// The host copies each argument into memory from here.
export function alloc(size: usize): usize {
  return heap.alloc(size);
}

export function greet(ptr: usize, length: usize): u64 {
  const count = visits(ptr, length);
  const name = String.UTF8.decodeUnsafe(ptr, length);
  heap.free(ptr);
  const text = String.UTF8.encode(`Hello, ${name}! (AssemblyScript, visit ${count})`);
  return (<u64>changetype<usize>(text) << 32) | <u64>text.byteLength;
}
