;; http_denied: a wasi:http handler that imports capabilities wasmgate denies (a socket and a
;; filesystem preopen list) at versions other than the hello's, and checks what it gets:
;; create-tcp-socket must answer err(access-denied) and get-directories an empty list. It then
;; returns without answering (the host says "no-response"); any other value makes it trap.
(component
  (import "wasi:http/types@0.2.3" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $req))
  (alias export $types "response-outparam" (type $out))
  (import "wasi:sockets/network@0.2.0" (instance $net
    (export "network" (type (sub resource)))
    (type $ec (enum "unknown" "access-denied" "not-supported" "invalid-argument"))
    (export "error-code" (type (eq $ec)))
    (type $fam (enum "ipv4" "ipv6"))
    (export "ip-address-family" (type (eq $fam)))))
  (alias export $net "error-code" (type $error-code))
  (alias export $net "ip-address-family" (type $family))
  (import "wasi:sockets/tcp@0.2.0" (instance $tcp
    (export "tcp-socket" (type (sub resource)))))
  (alias export $tcp "tcp-socket" (type $socket))
  (import "wasi:sockets/tcp-create-socket@0.2.0" (instance $create
    (export "error-code" (type $ec (eq $error-code)))
    (export "ip-address-family" (type $fam (eq $family)))
    (export "tcp-socket" (type $s (eq $socket)))
    (export "create-tcp-socket" (func (param "address-family" $fam) (result (result (own $s) (error $ec)))))))
  (import "wasi:filesystem/types@0.2.0" (instance $fs
    (export "descriptor" (type (sub resource)))))
  (alias export $fs "descriptor" (type $descriptor))
  (import "wasi:filesystem/preopens@0.2.0" (instance $pre
    (export "descriptor" (type $d (eq $descriptor)))
    (export "get-directories" (func (result (list (tuple (own $d) string)))))))
  (alias export $create "create-tcp-socket" (func $create-tcp-socket))
  (alias export $pre "get-directories" (func $get-directories))
  (core module $mem
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (i32.add (local.get 3) (i32.const 8))))
      (local.get $p)))
  (core instance $m (instantiate $mem))
  (alias core export $m "memory" (core memory $memory))
  (alias core export $m "cabi_realloc" (core func $realloc))
  (core func $create-lowered (canon lower (func $create-tcp-socket) (memory $memory)))
  (core func $dirs-lowered (canon lower (func $get-directories) (memory $memory) (realloc $realloc)))
  (core module $user
    (import "host" "memory" (memory 1))
    (import "host" "create" (func $create (param i32 i32)))
    (import "host" "dirs" (func $dirs (param i32)))
    (func (export "handle") (param i32 i32)
      ;; result<own<tcp-socket>, error-code> at 16: tag u8 @16, payload @20
      (call $create (i32.const 0) (i32.const 16))
      (if (i32.ne (i32.load8_u (i32.const 16)) (i32.const 1)) (then unreachable))
      (if (i32.ne (i32.load8_u (i32.const 20)) (i32.const 1)) (then unreachable))
      ;; list at 32: ptr @32, len @36
      (call $dirs (i32.const 32))
      (if (i32.ne (i32.load (i32.const 36)) (i32.const 0)) (then unreachable))))
  (core instance $host (export "memory" (memory $memory))
                       (export "create" (func $create-lowered))
                       (export "dirs" (func $dirs-lowered)))
  (core instance $u (instantiate $user (with "host" (instance $host))))
  (func $handle (param "request" (own $req)) (param "response-out" (own $out))
    (canon lift (core func $u "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.3" (instance $handler))
)
