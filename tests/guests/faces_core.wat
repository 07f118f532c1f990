;; faces_core: one guest for every limit, run through every face (tests/test_one_sandbox.py).
;; Exports: spin (loops forever), sleep (one 10 s poll_oneoff, then returns at once),
;; grow_exit (grows memory one page at a time until refused, then proc_exit(pages grown / 64)),
;; grow_divzero (grows until refused, then divides by zero). Tests add `_start` by replacing
;; the START marker with an export of the behaviour they want.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $spin (export "spin") (loop $forever (br $forever)))
  (func $sleep (export "sleep")
    ;; One relative clock subscription at 0 (48 bytes): tag 0 (clock) at 8, clock id at 16
    ;; (1: monotonic), timeout in ns at 24, precision at 32, flags at 40.
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 10000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))
  (func $grow (result i32)
    (local $pages i32)
    (block $refused
      (loop $more
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
        (br $more)))
    (local.get $pages))
  (func $grow_exit (export "grow_exit")
    (call $exit (i32.div_u (call $grow) (i32.const 64))))
  (func $grow_divzero (export "grow_divzero")
    (drop (i32.div_s (i32.const 1) (i32.mul (call $grow) (i32.const 0)))))
  ;; START
)
