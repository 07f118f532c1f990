#!/bin/sh
# The image's entry point: copy the compiled artifacts built into the image (WARM_CACHE) into the
# writable cache (WASMGATE_CACHE_DIR, a volume), then run `wasmgate serve`, configured by the
# WASMGATE_* variables (one per serve flag) and by any arguments given to the container.
# A cache that cannot be written only costs a compile at start-up: it never stops the server.
set -eu
seed="${WARM_CACHE:-}"
cache="${WASMGATE_CACHE_DIR:-}"
if [ -n "$seed" ] && [ -d "$seed" ] && [ -n "$cache" ] && [ "$seed" != "$cache" ]; then
    if mkdir -p "$cache" 2>/dev/null; then
        for artifact in "$seed"/*.cwasm; do
            [ -f "$artifact" ] || continue
            name=${artifact##*/}
            [ -f "$cache/$name" ] && continue
            # Copy under a temporary name, then rename: a reader never sees half an artifact.
            # Its seal comes along (without it the artifact is never trusted); the copy is
            # another file, so the first start hashes it once and seals it anew.
            seal="${artifact%.cwasm}.seal"
            sealname=${seal##*/}
            if cp "$artifact" "$cache/.seed-$name" 2>/dev/null \
                && { [ ! -f "$seal" ] || cp "$seal" "$cache/.seed-$sealname" 2>/dev/null; }; then
                mv -f "$cache/.seed-$name" "$cache/$name"
                if [ -f "$cache/.seed-$sealname" ]; then
                    mv -f "$cache/.seed-$sealname" "$cache/$sealname"
                fi
            else
                rm -f "$cache/.seed-$name" "$cache/.seed-$sealname" 2>/dev/null || true
                echo "entrypoint: cannot write $cache: modules compile at start-up" >&2
                break
            fi
        done
    else
        echo "entrypoint: cannot create $cache: modules compile at start-up" >&2
    fi
fi
exec wasmgate serve "$@"
