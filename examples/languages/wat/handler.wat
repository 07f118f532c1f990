;; A WAGI handler in hand-written WebAssembly text: the query string, the X-Greeting header and
;; the request body, as JSON. No libc: four WASI calls, a response built in linear memory, and
;; one write loop.
;;
;; Memory: 0-15 scratch for WASI results, 64-1023 the constant strings below, then the
;; environment (pointers and strings), the request body, and the response, growing as needed.
(module
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  (data (i32.const 64) "Content-Type: application/json\n\n{\"language\":\"WAT\",\"method\":") ;; 59
  (data (i32.const 128) ",\"query\":")       ;; 9
  (data (i32.const 144) ",\"greeting\":")    ;; 12
  (data (i32.const 160) ",\"length\":")      ;; 10
  (data (i32.const 176) ",\"body\":")        ;; 8
  (data (i32.const 192) "}\n")               ;; 2
  (data (i32.const 208) "REQUEST_METHOD=")   ;; 15
  (data (i32.const 224) "QUERY_STRING=")     ;; 13
  (data (i32.const 240) "HTTP_X_GREETING=")  ;; 16
  (data (i32.const 256) "0123456789abcdef")

  (global $env_count (mut i32) (i32.const 0))
  (global $out (mut i32) (i32.const 0))  ;; the next free byte of the response

  ;; Grow memory so that it holds at least $end bytes.
  (func $reserve (param $end i32) (local $pages i32)
    (local.set $pages (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                               (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then unreachable)))))

  (func $emit (param $ptr i32) (param $len i32)
    (memory.copy (global.get $out) (local.get $ptr) (local.get $len))
    (global.set $out (i32.add (global.get $out) (local.get $len))))

  (func $byte (param $c i32)
    (i32.store8 (global.get $out) (local.get $c))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))

  ;; A JSON string: quotes and backslashes escaped, control characters as \u00XX, the rest as is.
  (func $json (param $ptr i32) (param $len i32) (local $end i32) (local $c i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (call $byte (i32.const 34))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
      (local.set $c (i32.load8_u (local.get $ptr)))
      (if (i32.or (i32.eq (local.get $c) (i32.const 34)) (i32.eq (local.get $c) (i32.const 92)))
        (then (call $byte (i32.const 92)) (call $byte (local.get $c)))
        (else (if (i32.lt_u (local.get $c) (i32.const 32))
          (then
            (call $byte (i32.const 92)) (call $byte (i32.const 117))  ;; \u
            (call $byte (i32.const 48)) (call $byte (i32.const 48))   ;; 00
            (call $byte (i32.load8_u (i32.add (i32.const 256) (i32.shr_u (local.get $c) (i32.const 4)))))
            (call $byte (i32.load8_u (i32.add (i32.const 256) (i32.and (local.get $c) (i32.const 15))))))
          (else (call $byte (local.get $c))))))
      (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
      (br $next)))
    (call $byte (i32.const 34)))

  ;; The value of the environment variable whose "NAME=" prefix is at $name, as a JSON string
  ;; ("" when it is not set). The environment's pointers start at 1024.
  (func $json_env (param $name i32) (param $name_len i32) (local $i i32) (local $entry i32) (local $len i32)
    (block $missing (loop $next
      (br_if $missing (i32.ge_u (local.get $i) (global.get $env_count)))
      (local.set $entry (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.ne (call $prefix_len (local.get $entry) (local.get $name) (local.get $name_len))
                           (local.get $name_len)))
      (local.set $entry (i32.add (local.get $entry) (local.get $name_len)))
      (loop $scan  ;; to the terminating NUL
        (if (i32.load8_u (i32.add (local.get $entry) (local.get $len)))
          (then (local.set $len (i32.add (local.get $len) (i32.const 1))) (br $scan))))
      (call $json (local.get $entry) (local.get $len))
      (return)))
    (call $json (i32.const 0) (i32.const 0)))

  ;; How many of the first $n bytes at $a and $b agree.
  (func $prefix_len (param $a i32) (param $b i32) (param $n i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (br_if $done (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                           (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))

  ;; An unsigned decimal number.
  (func $number (param $v i32) (local $p i32)
    (local.set $p (i32.const 48))  ;; digits are written backwards into 32-47
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $digit (local.get $v)))
    (call $emit (local.get $p) (i32.sub (i32.const 48) (local.get $p))))

  (func (export "_start") (local $body i32) (local $len i32) (local $start i32)
    ;; The environment: the pointers at 1024, the strings right after them.
    (drop (call $environ_sizes_get (i32.const 0) (i32.const 4)))
    (global.set $env_count (i32.load (i32.const 0)))
    (local.set $body (i32.add (i32.const 1024) (i32.shl (global.get $env_count) (i32.const 2))))
    (call $reserve (i32.add (local.get $body) (i32.load (i32.const 4))))
    (drop (call $environ_get (i32.const 1024) (local.get $body)))
    (local.set $body (i32.and (i32.add (i32.add (local.get $body) (i32.load (i32.const 4))) (i32.const 15))
                              (i32.const -16)))
    ;; The body: read until end of input, 64 KiB at a time.
    (block $eof (loop $more
      (call $reserve (i32.add (i32.add (local.get $body) (local.get $len)) (i32.const 65536)))
      (i32.store (i32.const 0) (i32.add (local.get $body) (local.get $len)))
      (i32.store (i32.const 4) (i32.const 65536))
      (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br_if $eof (i32.eqz (i32.load (i32.const 8))))
      (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
      (br $more)))
    ;; The response: at most six bytes for each byte of body or variable, plus the constants.
    (local.set $start (i32.add (local.get $body) (local.get $len)))
    (global.set $out (local.get $start))
    (call $reserve (i32.add (local.get $start)
      (i32.add (i32.mul (i32.add (local.get $len) (i32.sub (local.get $body) (i32.const 1024))) (i32.const 6))
               (i32.const 1024))))
    (call $emit (i32.const 64) (i32.const 59))
    (call $json_env (i32.const 208) (i32.const 15))
    (call $emit (i32.const 128) (i32.const 9))
    (call $json_env (i32.const 224) (i32.const 13))
    (call $emit (i32.const 144) (i32.const 12))
    (call $json_env (i32.const 240) (i32.const 16))
    (call $emit (i32.const 160) (i32.const 10))
    (call $number (local.get $len))
    (call $emit (i32.const 176) (i32.const 8))
    (call $json (local.get $body) (local.get $len))
    (call $emit (i32.const 192) (i32.const 2))
    ;; Write it all, however many calls that takes.
    (block $done (loop $write
      (br_if $done (i32.ge_u (local.get $start) (global.get $out)))
      (i32.store (i32.const 0) (local.get $start))
      (i32.store (i32.const 4) (i32.sub (global.get $out) (local.get $start)))
      (br_if $done (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $start (i32.add (local.get $start) (i32.load (i32.const 8))))
      (br $write)))))
