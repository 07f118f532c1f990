;; comp_stdio: what WASI preview2 grants an embedded component, through the interfaces themselves.
;; - echo() -> u32: one blocking-read of stdin (up to 64 KiB), written to stdout; "to stderr\n"
;;   written to stderr; returns how many bytes it read (0 when stdin is empty or closed);
;; - quit(ok: bool): wasi:cli/exit with ok or err;
;; - preopens() -> list<tuple<u32, string>>: the granted folders (handle, guest path);
;; - flags(handle: u32) -> u8: descriptor.get-flags of a folder (bit 0 read, 1 write, 5 mutate).
(component
  (import "wasi:io/error@0.2.0" (instance $io-error
    (export "error" (type (sub resource)))))
  (alias export $io-error "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $streams
    (alias outer 1 $error (type $e))
    (export "error" (type $err (eq $e)))
    (export "input-stream" (type $in (sub resource)))
    (export "output-stream" (type $out (sub resource)))
    (type $stream-error (variant (case "last-operation-failed" (own $err)) (case "closed")))
    (export "stream-error" (type $se (eq $stream-error)))
    (export "[method]input-stream.blocking-read"
      (func (param "self" (borrow $in)) (param "len" u64) (result (result (list u8) (error $se)))))
    (export "[method]output-stream.blocking-write-and-flush"
      (func (param "self" (borrow $out)) (param "contents" (list u8)) (result (result (error $se)))))))
  (alias export $streams "input-stream" (type $input-stream))
  (alias export $streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdin@0.2.0" (instance $stdin
    (alias outer 1 $input-stream (type $in))
    (export "input-stream" (type $i (eq $in)))
    (export "get-stdin" (func (result (own $i))))))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout
    (alias outer 1 $output-stream (type $out))
    (export "output-stream" (type $o (eq $out)))
    (export "get-stdout" (func (result (own $o))))))
  (import "wasi:cli/stderr@0.2.0" (instance $stderr
    (alias outer 1 $output-stream (type $out))
    (export "output-stream" (type $o (eq $out)))
    (export "get-stderr" (func (result (own $o))))))
  (import "wasi:cli/exit@0.2.0" (instance $exit
    (export "exit" (func (param "status" (result))))))
  (import "wasi:filesystem/types@0.2.0" (instance $fs-types
    (export "descriptor" (type $d (sub resource)))
    (type $flags (flags "read" "write" "file-integrity-sync" "data-integrity-sync"
                        "requested-write-sync" "mutate-directory"))
    (export "descriptor-flags" (type $f (eq $flags)))
    (type $code (enum "access" "would-block" "already" "bad-descriptor" "busy" "deadlock"
                      "quota" "exist" "file-too-large" "illegal-byte-sequence" "in-progress"
                      "interrupted" "invalid" "io" "is-directory" "loop" "too-many-links"
                      "message-size" "name-too-long" "no-device" "no-entry" "no-lock"
                      "insufficient-memory" "insufficient-space" "not-directory" "not-empty"
                      "not-recoverable" "unsupported" "no-tty" "no-such-device" "overflow"
                      "not-permitted" "pipe" "read-only" "invalid-seek" "text-file-busy"
                      "cross-device"))
    (export "error-code" (type $c (eq $code)))
    (export "[method]descriptor.get-flags"
      (func (param "self" (borrow $d)) (result (result $f (error $c)))))))
  (alias export $fs-types "descriptor" (type $descriptor))
  (import "wasi:filesystem/preopens@0.2.0" (instance $preopens
    (alias outer 1 $descriptor (type $desc))
    (export "descriptor" (type $d (eq $desc)))
    (export "get-directories" (func (result (list (tuple (own $d) string)))))))

  (core module $mem
    (memory (export "memory") 2)
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

  (alias export $stdin "get-stdin" (func $get-stdin))
  (alias export $stdout "get-stdout" (func $get-stdout))
  (alias export $stderr "get-stderr" (func $get-stderr))
  (alias export $streams "[method]input-stream.blocking-read" (func $read))
  (alias export $streams "[method]output-stream.blocking-write-and-flush" (func $write))
  (alias export $exit "exit" (func $exit-func))
  (alias export $preopens "get-directories" (func $get-directories))
  (alias export $fs-types "[method]descriptor.get-flags" (func $get-flags))
  (core func $get-stdin-l (canon lower (func $get-stdin)))
  (core func $get-stdout-l (canon lower (func $get-stdout)))
  (core func $get-stderr-l (canon lower (func $get-stderr)))
  (core func $read-l (canon lower (func $read) (memory $memory) (realloc $realloc)))
  (core func $write-l (canon lower (func $write) (memory $memory)))
  (core func $exit-l (canon lower (func $exit-func)))
  (core func $dirs-l (canon lower (func $get-directories) (memory $memory) (realloc $realloc)))
  (core func $flags-l (canon lower (func $get-flags) (memory $memory)))
  (core func $drop-in (canon resource.drop $input-stream))
  (core func $drop-out (canon resource.drop $output-stream))

  (core module $user
    (import "wasi" "get-stdin" (func $get-stdin (result i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "get-stderr" (func $get-stderr (result i32)))
    (import "wasi" "read" (func $read (param i32 i64 i32)))
    (import "wasi" "write" (func $write (param i32 i32 i32 i32)))
    (import "wasi" "exit" (func $exit (param i32)))
    (import "wasi" "dirs" (func $dirs (param i32)))
    (import "wasi" "flags" (func $flags (param i32 i32)))
    (import "wasi" "drop-in" (func $drop-in (param i32)))
    (import "wasi" "drop-out" (func $drop-out (param i32)))
    (import "mem" "memory" (memory 1))
    (data (i32.const 512) "to stderr\n")
    (func (export "echo") (result i32)
      (local $in i32) (local $out i32) (local $err i32) (local $n i32)
      (local.set $in (call $get-stdin))
      (local.set $out (call $get-stdout))
      (local.set $err (call $get-stderr))
      ;; result<list<u8>, stream-error> at 16: tag at 16, list (ptr, len) at 20, 24
      (call $read (local.get $in) (i64.const 65536) (i32.const 16))
      (if (i32.eqz (i32.load8_u (i32.const 16)))
        (then
          (local.set $n (i32.load (i32.const 24)))
          (call $write (local.get $out) (i32.load (i32.const 20)) (local.get $n) (i32.const 32))))
      (call $write (local.get $err) (i32.const 512) (i32.const 10) (i32.const 32))
      (call $drop-in (local.get $in))
      (call $drop-out (local.get $out))
      (call $drop-out (local.get $err))
      (local.get $n))
    (func (export "quit") (param $ok i32)
      (call $exit (i32.eqz (local.get $ok))))
    (func (export "preopens") (result i32)
      (call $dirs (i32.const 48))
      (i32.const 48))
    (func (export "flags") (param $handle i32) (result i32)
      ;; result<descriptor-flags, error-code> at 64: tag at 64, flags at 65
      (call $flags (local.get $handle) (i32.const 64))
      (if (result i32) (i32.load8_u (i32.const 64))
        (then (i32.const 255))
        (else (i32.load8_u (i32.const 65))))))
  (core instance $wasi
    (export "get-stdin" (func $get-stdin-l))
    (export "get-stdout" (func $get-stdout-l))
    (export "get-stderr" (func $get-stderr-l))
    (export "read" (func $read-l))
    (export "write" (func $write-l))
    (export "exit" (func $exit-l))
    (export "dirs" (func $dirs-l))
    (export "flags" (func $flags-l))
    (export "drop-in" (func $drop-in))
    (export "drop-out" (func $drop-out)))
  (core instance $mem-inst (export "memory" (memory $memory)))
  (core instance $u (instantiate $user (with "wasi" (instance $wasi)) (with "mem" (instance $mem-inst))))

  (func (export "echo") (result u32) (canon lift (core func $u "echo")))
  (func (export "quit") (param "ok" bool) (canon lift (core func $u "quit")))
  (func (export "preopens") (result (list (tuple u32 string)))
    (canon lift (core func $u "preopens") (memory $memory)))
  (func (export "flags") (param "handle" u32) (result u8) (canon lift (core func $u "flags"))))
