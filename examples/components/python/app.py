"""The example:greeter world in Python, made a component by componentize-py.

componentize-py generates the ``wit_world`` bindings from ../greeter.wit at build time; records
arrive as ``wit_world.Person`` dataclasses and ``option`` is ``None`` or the value.
"""

import wit_world


class WitWorld(wit_world.WitWorld):
    def greet(self, name: str) -> str:
        return f"Hello, {name}!"

    def oldest(self, people: list[wit_world.Person]) -> wit_world.Person | None:
        return max(people, key=lambda p: p.age, default=None)
