;; hello.wat - the smallest useful WAGI guest, written by hand in the WebAssembly text format.
;;
;; A WAGI guest answers an HTTP request the way a CGI script does: it writes response headers,
;; a blank line and then the body to standard output. This module needs nothing from WASI but
;; fd_write, so it shows the whole protocol with no libc in the way.
(module
  ;; fd_write(fd, iovs, iovs_len, nwritten_out) -> errno
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  ;; WASI hosts read and write guest memory, so a WASI module must export it.
  (memory (export "memory") 1)

  ;; Memory layout: bytes 0..7 hold one iovec {ptr, len}, bytes 8..11 receive the count written,
  ;; and the response starts at byte 16. The response is 50 bytes: a header, "\n\n", the body.
  (data (i32.const 16) "Content-Type: text/plain\n\nHello from WebAssembly!\n")

  (func $main (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) ;; iovec.ptr
    (i32.store (i32.const 4) (i32.const 50)) ;; iovec.len
    ;; fd_write may write less than asked (a short write), so loop until the iovec is empty.
    (block $done
      (loop $again
        ;; Stop on any error (non-zero errno): the host sees a truncated response.
        (br_if $done
          (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        ;; A write of zero bytes makes no progress: give up rather than spin.
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        ;; Advance the iovec past the bytes that were written.
        (i32.store (i32.const 0)
          (i32.add (i32.load (i32.const 0)) (i32.load (i32.const 8))))
        (i32.store (i32.const 4)
          (i32.sub (i32.load (i32.const 4)) (i32.load (i32.const 8))))
        ;; Go round again while bytes remain.
        (br_if $again (i32.load (i32.const 4)))))))
