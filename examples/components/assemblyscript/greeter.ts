// The example:greeter-lite world in AssemblyScript, with the canonical ABI written by hand.
// Built with the stub runtime (nothing is ever freed, so results stay valid) and no abort import,
// so the core module imports nothing and becomes a component without a WASI adapter.

// Return area for the (ptr, len) of a string result.
const RET: usize = memory.data(8, 4);

export function cabi_realloc(old: usize, oldSize: usize, align: usize, newSize: usize): usize {
  // heap.alloc aligns to 16, enough for every canonical ABI alignment
  return old ? heap.realloc(old, newSize) : heap.alloc(newSize);
}

// greet: func(name: string) -> string
export function greet(ptr: usize, len: usize): usize {
  const name = String.UTF8.decodeUnsafe(ptr, len);
  const out = String.UTF8.encode("Hello, " + name + "!");
  store<u32>(RET, <u32>changetype<usize>(out));
  store<u32>(RET, <u32>out.byteLength, 4);
  return RET;
}
