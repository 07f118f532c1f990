;; slow_start_component: a component whose core module's start function spins forever, so
;; instantiating it never finishes on its own: its deadline must end it as a timeout (never as
;; a link error), in every face that instantiates components.
(component
  (core module $m
    (func $spin (loop $forever (br $forever)))
    (start $spin)
    (func (export "noop")))
  (core instance $i (instantiate $m))
  (func (export "noop") (canon lift (core func $i "noop"))))
