// An embedding plugin in AssemblyScript (see ../plugins.py): `greet(name) -> string`. It asks the
// host how many times it has seen the name through the imported `env.visits`. AssemblyScript
// strings are UTF-16, so the UTF-8 bytes the host passes are decoded on the way in and encoded on
// the way out. Compiled with `--use abort=`, so the module imports nothing but `env.visits`.

// @ts-ignore: decorator
@external("env", "visits")
declare function visits(name: usize, length: usize): i32;

// The host copies each argument into memory from here (raw memory, outside the garbage
// collector's reach); the guest frees it.
export function alloc(size: usize): usize {
  return heap.alloc(size);
}

export function greet(ptr: usize, length: usize): u64 {
  const count = visits(ptr, length);
  const name = String.UTF8.decodeUnsafe(ptr, length);
  heap.free(ptr);
  const text = String.UTF8.encode(`Hello, ${name}! (AssemblyScript, visit ${count})`);
  // The result goes out in raw memory too, so no collection can move or free it before the host
  // has copied it; the host then calls cabi_post_greet.
  const size = <usize>text.byteLength;
  const out = heap.alloc(size);
  memory.copy(out, changetype<usize>(text), size);
  return (<u64>out << 32) | <u64>size;
}

export function cabi_post_greet(result: u64): void {
  heap.free(<usize>(result >> 32));
}
