;; embed_missing: imports that no host provides, of every kind, to test that all are reported.
(module
  (import "env" "foo" (func (param i32)))
  (import "env" "bar" (func (result i64)))
  (import "env" "table" (table 1 funcref))
  (import "other" "baz" (func (param f64 f64) (result f32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (func (export "noop")))
