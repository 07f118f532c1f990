//! An embedding plugin in Rust (see ../plugins.py): `greet(name) -> string`, strings passed as
//! (ptr, len) through the exported `alloc`, and results returned as one i64, (ptr << 32) | len.

#[link(wasm_import_module = "env")]
extern "C" {
    /// Provided by the host: how many times it has been asked about this name (this call included).
    fn visits(ptr: *const u8, len: usize) -> u32;
}

/// The host copies each argument into memory from here; the guest owns it from then on.
#[no_mangle]
pub extern "C" fn alloc(size: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(size);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// `greet` hands its result to the host here once it has been copied out: free it.
#[no_mangle]
pub extern "C" fn cabi_post_greet(packed: u64) {
    let (ptr, len) = ((packed >> 32) as usize as *mut u8, packed as u32 as usize);
    unsafe { drop(Vec::from_raw_parts(ptr, len, len)) };
}

#[no_mangle]
pub extern "C" fn greet(ptr: *mut u8, len: usize) -> u64 {
    let name = unsafe { String::from_raw_parts(ptr, len, len) };
    let count = unsafe { visits(name.as_ptr(), name.len()) };
    let text = format!("Hello, {}! (Rust, visit {})", name, count).into_bytes();
    let mut text = std::mem::ManuallyDrop::new(text.into_boxed_slice());
    ((text.as_mut_ptr() as u64) << 32) | text.len() as u64
}
