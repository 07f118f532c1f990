;; host_strings: a guest whose imports take and return strings and bytes through the string
;; convention (tests/test_embed_host_strings.py). Each export forwards its (ptr, len) argument to
;; one import and returns the import's packed (ptr << 32 | len) result.
(module
  (import "env" "upper" (func $upper (param i32 i32) (result i64)))
  (import "env" "reverse" (func $reverse (param i32 i32) (result i64)))
  (import "env" "count" (func $count (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32)
        (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "shout") (param i32 i32) (result i64)
    (call $upper (local.get 0) (local.get 1)))
  (func (export "flip") (param i32 i32) (result i64)
    (call $reverse (local.get 0) (local.get 1)))
  (func (export "count_char") (param i32 i32 i32) (result i32)
    (call $count (local.get 0) (local.get 1) (local.get 2))))
