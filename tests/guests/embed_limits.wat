;; embed_limits: small exports for limits, traps, exits, multi-value results and the simpler
;; alloc(size) string convention.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $calls (mut i32) (i32.const 0))

  (func (export "spin") (loop $l (br $l)))
  ;; n iterations of a loop: fuel use grows with n
  (func (export "burn") (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  ;; like an allocator that aborts when memory runs out
  (func (export "grow_or_trap") (param i32) (result i32)
    (if (i32.eq (memory.grow (local.get 0)) (i32.const -1)) (then unreachable))
    (memory.size))
  (func (export "trap") (result i32) (i32.div_u (i32.const 1) (i32.const 0)))
  (func (export "exit") (param i32) (call $proc_exit (local.get 0)))
  (func (export "pair") (param i32) (result i32 i64)
    (local.get 0) (i64.extend_i32_s (local.get 0)))
  (func (export "fadd") (param f32 f32) (result f32) (f32.add (local.get 0) (local.get 1)))
  (func (export "count") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (global.get $calls))
  (global (export "answer") i32 (i32.const 42))

  (func $alloc (export "alloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  ;; ASCII upper-case in place; result packed as (ptr << 32) | len
  (func (export "shout") (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (i32.store8 (i32.add (local.get $p) (local.get $i))
                            (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  ;; two bytes that are not UTF-8
  (data (i32.const 512) "\ff\fe")
  (func (export "not_utf8") (result i64)
    (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 2)))
)
