;; p2_sleeper: asleep in WASI preview2's own wait, the way wasi-libc and Rust sleep on it.
;; - sleep(ns): wasi:clocks/monotonic-clock.subscribe-duration, then wasi:io/poll.poll on it;
;; - block(ns): the same pollable, waited on with pollable.block;
;; - sleep-two(ns): poll on two pollables (ns, and 1 ms): returns after 1 ms;
;; - wasi:cli/run: sleeps 10 s (poll), then returns ok.
;; Each returns once its wait is over (the host's answer is not looked at).
(component
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow 0))))
    (export "poll" (func (param "in" (list (borrow 0))) (result (list u32))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer 1 $pollable (type $p))
    (export "pollable" (type (eq $p)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
  (alias export $clock "subscribe-duration" (func $subscribe))
  (alias export $poll "poll" (func $poll-list))
  (alias export $poll "[method]pollable.block" (func $block))

  (core module $mem
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "cabi_realloc")
          (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $heap (i32.add (local.get $p) (local.get $size)))
      (local.get $p)))
  (core instance $mi (instantiate $mem))
  (alias core export $mi "memory" (core memory $memory))
  (alias core export $mi "cabi_realloc" (core func $realloc))

  (core func $subscribe-lowered (canon lower (func $subscribe)))
  (core func $poll-lowered (canon lower (func $poll-list) (memory $memory) (realloc $realloc)))
  (core func $block-lowered (canon lower (func $block)))
  (core func $drop-pollable (canon resource.drop $pollable))

  (core module $sleeper
    (import "wasi" "subscribe" (func $subscribe (param i64) (result i32)))
    (import "wasi" "poll" (func $poll (param i32 i32 i32)))
    (import "wasi" "block" (func $block (param i32)))
    (import "wasi" "drop" (func $drop (param i32)))
    (import "mem" "memory" (memory 1))
    (func $sleep (export "sleep") (param $ns i64)
      (local $p i32)
      (local.set $p (call $subscribe (local.get $ns)))
      (i32.store (i32.const 16) (local.get $p))  ;; list<borrow<pollable>> of one, at 16
      (call $poll (i32.const 16) (i32.const 1) (i32.const 32))
      (call $drop (local.get $p)))
    (func (export "sleep-two") (param $ns i64)
      (local $p i32) (local $q i32)
      (local.set $p (call $subscribe (local.get $ns)))
      (local.set $q (call $subscribe (i64.const 1000000)))
      (i32.store (i32.const 16) (local.get $p))
      (i32.store (i32.const 20) (local.get $q))
      (call $poll (i32.const 16) (i32.const 2) (i32.const 32))
      (call $drop (local.get $p))
      (call $drop (local.get $q)))
    (func (export "block") (param $ns i64)
      (local $p i32)
      (local.set $p (call $subscribe (local.get $ns)))
      (call $block (local.get $p))
      (call $drop (local.get $p)))
    (func (export "run") (result i32)
      (call $sleep (i64.const 10000000000))
      (i32.const 0)))
  (core instance $wasi
    (export "subscribe" (func $subscribe-lowered))
    (export "poll" (func $poll-lowered))
    (export "block" (func $block-lowered))
    (export "drop" (func $drop-pollable)))
  (core instance $mem-inst (export "memory" (memory $memory)))
  (core instance $s (instantiate $sleeper (with "wasi" (instance $wasi)) (with "mem" (instance $mem-inst))))

  (func (export "sleep") (param "ns" u64) (canon lift (core func $s "sleep")))
  (func (export "block") (param "ns" u64) (canon lift (core func $s "block")))
  (func (export "sleep-two") (param "ns" u64) (canon lift (core func $s "sleep-two")))
  (func $run (result (result)) (canon lift (core func $s "run")))
  (instance $run-inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-inst)))
