# Guarded: worker processes are started with the spawn method, which imports the parent's
# __main__ module again (as __mp_main__); that import must not start another CLI.
if __name__ == "__main__":
    from .cli import console

    console()
