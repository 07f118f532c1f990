;; faces_component: the component twin of faces_core.wat for the embedding API and `call`:
;; spin (loops forever), grow-pages (grows memory until refused, returns pages grown / 64),
;; grow-divzero (grows until refused, then divides by zero).
(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "spin") (loop $forever (br $forever)))
    (func $grow (result i32)
      (local $pages i32)
      (block $refused
        (loop $more
          (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
          (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
          (br $more)))
      (local.get $pages))
    (func (export "grow-pages") (result i32) (i32.div_u (call $grow) (i32.const 64)))
    (func (export "grow-divzero")
      (drop (i32.div_s (i32.const 1) (i32.mul (call $grow) (i32.const 0))))))
  (core instance $i (instantiate $m))
  (func (export "spin") (canon lift (core func $i "spin")))
  (func (export "grow-pages") (result u32) (canon lift (core func $i "grow-pages")))
  (func (export "grow-divzero") (canon lift (core func $i "grow-divzero"))))
