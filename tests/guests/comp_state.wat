;; comp_state: a component on wasi:keyvalue (store, atomics @0.2.0-draft2) and wasi:config/store
;; (@0.2.0-draft), for the embedding API and a served route alike.
;; - count(store, delta) -> result<s64, store-error>: opens `store`, increments "hits" by delta;
;;   an error of open or increment comes back as it is;
;; - config(key) -> result<option<string>, config-error>: wasi:config/store.get.
(component
  (import "wasi:keyvalue/store@0.2.0-draft2" (instance $kv
    (type $error (variant (case "no-such-store") (case "access-denied") (case "other" string)))
    (export "error" (type $e (eq $error)))
    (export "bucket" (type $b (sub resource)))
    (export "open" (func (param "identifier" string) (result (result (own $b) (error $e)))))))
  (alias export $kv "bucket" (type $bucket))
  (alias export $kv "error" (type $kv-error))
  (import "wasi:keyvalue/atomics@0.2.0-draft2" (instance $atomics
    (alias outer 1 $bucket (type $b0))
    (export "bucket" (type $b (eq $b0)))
    (alias outer 1 $kv-error (type $e0))
    (export "error" (type $e (eq $e0)))
    (export "increment" (func (param "bucket" (borrow $b)) (param "key" string)
                              (param "delta" s64) (result (result s64 (error $e)))))))
  (import "wasi:config/store@0.2.0-draft" (instance $config
    (type $error (variant (case "upstream" string) (case "io" string)))
    (export "error" (type $e (eq $error)))
    (export "get" (func (param "key" string) (result (result (option string) (error $e)))))))

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

  (alias export $kv "open" (func $open))
  (alias export $atomics "increment" (func $increment))
  (alias export $config "get" (func $config-get))
  (core func $open-l (canon lower (func $open) (memory $memory) (realloc $realloc)))
  (core func $increment-l (canon lower (func $increment) (memory $memory) (realloc $realloc)))
  (core func $config-get-l (canon lower (func $config-get) (memory $memory) (realloc $realloc)))
  (core func $drop-bucket (canon resource.drop $bucket))

  (core module $user
    (import "wasi" "open" (func $open (param i32 i32 i32)))
    (import "wasi" "increment" (func $increment (param i32 i32 i32 i64 i32)))
    (import "wasi" "config-get" (func $config-get (param i32 i32 i32)))
    (import "wasi" "drop-bucket" (func $drop-bucket (param i32)))
    (import "mem" "memory" (memory 1))
    (data (i32.const 600) "hits")
    ;; result<own<bucket>, error> at 100: tag at 100, bucket or error at 104 (error: tag at
    ;; 104, string at 108, 112). result<s64, error> at 128: tag at 128, payload at 136.
    (func (export "count") (param $p i32) (param $n i32) (param $delta i64) (result i32)
      (local $bucket i32)
      (call $open (local.get $p) (local.get $n) (i32.const 100))
      (if (i32.load8_u (i32.const 100))
        (then
          (i32.store8 (i32.const 128) (i32.const 1))
          (i32.store8 (i32.const 136) (i32.load8_u (i32.const 104)))
          (i32.store (i32.const 140) (i32.load (i32.const 108)))
          (i32.store (i32.const 144) (i32.load (i32.const 112)))
          (return (i32.const 128))))
      (local.set $bucket (i32.load (i32.const 104)))
      (call $increment (local.get $bucket) (i32.const 600) (i32.const 4) (local.get $delta)
                       (i32.const 128))
      (call $drop-bucket (local.get $bucket))
      (i32.const 128))
    (func (export "config") (param $p i32) (param $n i32) (result i32)
      (call $config-get (local.get $p) (local.get $n) (i32.const 160))
      (i32.const 160)))
  (core instance $wasi
    (export "open" (func $open-l))
    (export "increment" (func $increment-l))
    (export "config-get" (func $config-get-l))
    (export "drop-bucket" (func $drop-bucket)))
  (core instance $mem-inst (export "memory" (memory $memory)))
  (core instance $u (instantiate $user (with "wasi" (instance $wasi)) (with "mem" (instance $mem-inst))))

  (type $store-error' (variant (case "no-such-store") (case "access-denied") (case "other" string)))
  (export $store-error "store-error" (type $store-error'))
  (type $config-error' (variant (case "upstream" string) (case "io" string)))
  (export $config-error "config-error" (type $config-error'))
  (func (export "count") (param "store" string) (param "delta" s64)
    (result (result s64 (error $store-error)))
    (canon lift (core func $u "count") (memory $memory) (realloc $realloc)))
  (func (export "config") (param "key" string) (result (result (option string) (error $config-error)))
    (canon lift (core func $u "config") (memory $memory) (realloc $realloc))))
