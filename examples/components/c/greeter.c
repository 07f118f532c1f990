// greeter: the example:greeter world in C, lifting and lowering the canonical ABI by hand
// (wit-bindgen would generate this). Built as a reactor core module, then made a component.
//
// Canonical ABI facts used here (world-level exports):
// - a string or list parameter arrives as (ptr, len) in memory from our cabi_realloc, and the
//   callee owns it;
// - a result that does not fit in one core value is written to a return area whose address the
//   export returns; cabi_post_<name> then frees what the result points to.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    (void)align;  // malloc aligns to 16
    return realloc(old, new_size ? new_size : 1);
}

static uint32_t ret_area[4];

// greet: func(name: string) -> string
EXPORT("greet")
uint32_t *greet(char *name, size_t len) {
    static const char prefix[] = "Hello, ";
    size_t n = sizeof prefix - 1;
    char *out = malloc(n + len + 1);
    memcpy(out, prefix, n);
    memcpy(out + n, name, len);
    out[n + len] = '!';
    free(name);
    ret_area[0] = (uint32_t)(uintptr_t)out;
    ret_area[1] = (uint32_t)(n + len + 1);
    return ret_area;
}

EXPORT("cabi_post_greet")
void post_greet(uint32_t *ret) { free((void *)(uintptr_t)ret[0]); }

// record person { name: string, age: u32 }: 12 bytes, align 4
typedef struct {
    char *name;
    uint32_t name_len;
    uint32_t age;
} person;

// oldest: func(people: list<person>) -> option<person>
// option<person> in memory: discriminant byte at 0, the person at 4.
EXPORT("oldest")
uint32_t *oldest(person *people, size_t count) {
    person *best = NULL;
    for (size_t i = 0; i < count; i++)
        if (!best || people[i].age > best->age) best = &people[i];
    memset(ret_area, 0, sizeof ret_area);
    if (best) {
        char *name = malloc(best->name_len ? best->name_len : 1);
        memcpy(name, best->name, best->name_len);
        ((uint8_t *)ret_area)[0] = 1;
        ret_area[1] = (uint32_t)(uintptr_t)name;
        ret_area[2] = best->name_len;
        ret_area[3] = best->age;
    }
    for (size_t i = 0; i < count; i++) free(people[i].name);
    free(people);
    return ret_area;
}

EXPORT("cabi_post_oldest")
void post_oldest(uint32_t *ret) {
    if (((uint8_t *)ret)[0]) free((void *)(uintptr_t)ret[1]);
}
