;; comp_wasi: exports the environment WASI preview2 gives it, to test that a component sees exactly
;; the capabilities granted (wasi:cli/environment, lowered into guest memory and lifted back out).
(component
  (import "wasi:cli/environment@0.2.0" (instance $env
    (export "get-environment" (func (result (list (tuple string string)))))
    (export "get-arguments" (func (result (list string))))))
  (alias export $env "get-environment" (func $get-environment))
  (alias export $env "get-arguments" (func $get-arguments))
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
  (core func $get-environment-lowered
    (canon lower (func $get-environment) (memory $memory) (realloc $realloc)))
  (core func $get-arguments-lowered
    (canon lower (func $get-arguments) (memory $memory) (realloc $realloc)))
  (core module $user
    (import "wasi" "get-environment" (func $ge (param i32)))
    (import "wasi" "get-arguments" (func $ga (param i32)))
    (func (export "environment") (result i32) (call $ge (i32.const 16)) (i32.const 16))
    (func (export "arguments") (result i32) (call $ga (i32.const 16)) (i32.const 16)))
  (core instance $wasi (export "get-environment" (func $get-environment-lowered))
                       (export "get-arguments" (func $get-arguments-lowered)))
  (core instance $u (instantiate $user (with "wasi" (instance $wasi))))
  (func (export "environment") (result (list (tuple string string)))
    (canon lift (core func $u "environment") (memory $memory)))
  (func (export "arguments") (result (list string))
    (canon lift (core func $u "arguments") (memory $memory)))
)
