#!/usr/bin/python3
"""Writes a C test that calls every function of hpcnn.h the wrong way (native-exports/tests/gen_misuse.py HEADER OUT).

The functions and their parameter types come from the header itself, so a function added there is misused here with
no edit; a parameter type this generator does not know stops it with an error (teach it the new type), so nothing is
skipped silently. Per function returning hpcnn_status, each on fresh fixtures (a small compiled model, a dataset, fit
options):
  null      every pointer argument NULL                      -> not HPCNN_OK, a message
  released  every handle argument a released handle         -> not HPCNN_OK, a message
  foreign   every handle argument the address of a local    -> not HPCNN_OK, a message
  sizes     each integer argument in turn -1, the type's minimum and maximum; each float NaN and infinity; buffers of
            16 elements wherever a count is claimed         -> no crash; a failure leaves a message
  utf8      each string argument in turn bytes that are not UTF-8 -> no crash; a failure leaves a message
Release functions get NULL, a handle released already and a foreign pointer; hpcnn_free gets NULL. Functions that
never fail are called and must answer. The program exits non-zero on a failed check and prints how many calls it made;
a crash is a failure of the test run itself.
"""
import re
import sys

HANDLES = {"hpcnn_model": "m", "hpcnn_dataset": "ds", "hpcnn_fit_options": "o"}
INTS = {"int32_t": ("INT32_MIN", "INT32_MAX"), "int64_t": ("INT64_MIN", "INT64_MAX"), "uint32_t": ("0", "UINT32_MAX"),
        "uint64_t": ("0", "UINT64_MAX")}
FLOATS = {"float", "double"}
BUFFERS = {"float": "fbuf", "int32_t": "ibuf", "int64_t": "lbuf", "double": "dbuf", "uint8_t": "bbuf"}
CALLBACKS = {"hpcnn_epoch_callback", "hpcnn_batch_callback", "hpcnn_message_callback"}


def declarations(header):
    text = re.sub(r"/\*.*?\*/", " ", header, flags=re.S)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    text = re.sub(r"typedef[^;]*;", " ", text)
    text = " ".join(text.split())
    for ret, name, params in re.findall(r"([A-Za-z_][\w ]*?\**)\s*\b(hpcnn_\w+)\s*\(([^()]*)\)\s*;", text):
        args = []
        if params.strip() != "void":
            for p in params.split(","):
                m = re.match(r"\s*(.*?)\s*(\w+)\s*$", p)
                args.append((" ".join(m.group(1).replace("*", " * ").split()).replace(" *", "*"), m.group(2)))
        yield ret.strip(), name, args


def kind(ctype, name, fn):
    if ctype == "const char* const*": return "string_array"
    t = ctype.replace("const ", "")
    base = t.rstrip("*")
    stars = len(t) - len(base)
    if stars == 0 and base in INTS: return "int"
    if stars == 0 and base in FLOATS: return "float"
    if stars == 0 and base in CALLBACKS: return "callback"
    if stars == 1 and base in HANDLES: return "handle"
    if stars == 2 and base in HANDLES: return "out_handle"
    if stars == 1 and base == "char": return "string"
    if stars == 2 and base == "char": return "out_string"
    if stars == 1 and base in BUFFERS: return "buffer"
    if stars == 1 and base == "void": return "user"
    sys.exit(f"gen_misuse.py: {fn}: parameter '{ctype} {name}' has a type this generator does not know; teach it")


def valid(ctype, name, k):
    base = ctype.replace("const ", "").rstrip("*")
    if k == "int": return "0" if name in ("layer", "index", "padding_mode", "loss", "mode", "flags") else "1"
    if k == "float": return "0.5"
    if k == "callback": return "NULL"
    if k == "handle": return HANDLES[base]
    if k == "out_handle": return f"&out_{HANDLES[base]}"
    if k == "string":
        return {"path": "path", "images_path": "path", "labels_path": "path", "directory": "dir", "name": '"weight"',
                "json": '"{\\"type\\":\\"relu\\"}"'}.get(name, "path")
    if k == "out_string": return "&out_cstr" if ctype.startswith("const") else "&out_str"
    if k == "buffer": return BUFFERS[base]
    if k == "string_array": return "names"
    return "NULL"


def call(name, args, values):
    return f"{name}({', '.join(values)})"


def main():
    header_path, out_path = sys.argv[1], sys.argv[2]
    decls = list(declarations(open(header_path, encoding="utf-8").read()))
    if len(decls) < 50: sys.exit(f"gen_misuse.py: only {len(decls)} functions found in {header_path}: the parser is broken")
    body, names = [], []
    for ret, name, args in decls:
        names.append(name)
        kinds = [kind(t, n, name) for t, n in args]
        vals = [valid(t, n, k) for (t, n), k in zip(args, kinds)]
        if ret == "hpcnn_status":
            def case(label, values, must_fail):
                c = call(name, args, values)
                body.append(f"    FRESH(); EXPECT({c}, {1 if must_fail else 0}, \"{label}: {c.replace(chr(34), chr(39))}\"); STALE();")
            ptrs = [i for i, k in enumerate(kinds) if k not in ("int", "float", "callback")]
            if ptrs:
                case("null", [("NULL" if i in ptrs else v) for i, v in enumerate(vals)], True)
            hs = [i for i, k in enumerate(kinds) if k == "handle"]
            if hs:
                case("released", [(f"released_{vals[i]}" if i in hs else v) for i, v in enumerate(vals)], True)
                case("foreign", [(f"(void*)&foreign" if i in hs else v) for i, v in enumerate(vals)], True)
            for i, k in enumerate(kinds):
                base = args[i][0].replace("const ", "")
                if k == "int":
                    lo, hi = INTS[base]
                    for bad in sorted({"-1", lo, hi} - {"0"}):
                        case("size", vals[:i] + [f"({base}){bad}"] + vals[i + 1:], False)
                elif k == "float":
                    for bad in ("NAN", "INFINITY", "-INFINITY"):
                        case("float", vals[:i] + [bad] + vals[i + 1:], False)
                elif k == "string":
                    case("utf8", vals[:i] + ["bad_utf8"] + vals[i + 1:], False)
        elif ret == "void" and name.endswith("_release"):
            h = HANDLES[args[0][0].rstrip("*")]
            body.append(f"    {name}(NULL); calls_++;")
            body.append(f"    {name}(released_{h}); calls_++;")
            body.append(f"    {name}((void*)&foreign); calls_++;")
        elif name == "hpcnn_free":
            body.append(f"    hpcnn_free(NULL); calls_++;")
        elif ret == "void":
            sys.exit(f"gen_misuse.py: void function {name} is neither a release function nor hpcnn_free; teach the generator")
        elif args:
            sys.exit(f"gen_misuse.py: {name} returns {ret} and takes arguments; teach the generator")
        elif ret.startswith("const char"):
            body.append(f"    CHECK({name}() != NULL, \"{name} returned NULL\"); calls_++;")
        else:
            body.append(f"    (void){name}(); calls_++;")
    out = open(out_path, "w", encoding="utf-8")
    out.write(f"""/* Generated by native-exports/tests/gen_misuse.py from {header_path.split('/')[-1]}: do not edit.
   Every function of the header called with NULL pointers, released and foreign handles, absurd sizes, NaN and
   strings that are not UTF-8. {len(names)} functions. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "check.h"

static long calls_ = 0;
static float fbuf[16];
static int32_t ibuf[16];
static int64_t lbuf[16];
static double dbuf[16];
static uint8_t bbuf[16];
static const char* names[16] = {{"a", "b", "c"}};
static char path[512], dir[512], bad_utf8[600];
static hpcnn_model *m, *out_m, *released_m;
static hpcnn_dataset *ds, *out_ds, *released_ds;
static hpcnn_fit_options *o, *out_o, *released_o;
static char* out_str;
static const char* out_cstr;
static struct {{ char bytes[256]; }} foreign;

static hpcnn_model* small_model(void) {{
    hpcnn_model* x = NULL;
    hpcnn_model_create(1, 4, 4, 7, &x);
    hpcnn_add_flatten(x);
    hpcnn_add_dense(x, 3, 1);
    hpcnn_model_compile_sgd(x, HPCNN_LOSS_CROSS_ENTROPY, 0.01f, 0.0f, 0, 0.0f);
    return x;
}}

static hpcnn_dataset* small_dataset(void) {{
    float images[4 * 16];
    int32_t labels[4] = {{0, 1, 2, 0}};
    for (int i = 0; i < 4 * 16; i++) images[i] = (float)(i % 5) * 0.1f;
    hpcnn_dataset* x = NULL;
    hpcnn_dataset_create(images, labels, 4, 1, 4, 4, 3, &x);
    return x;
}}

static void FRESH(void) {{
    m = small_model();
    ds = small_dataset();
    hpcnn_fit_options_create(&o);
    out_m = NULL; out_ds = NULL; out_o = NULL; out_str = NULL;
    memset(fbuf, 0, sizeof fbuf); memset(ibuf, 0, sizeof ibuf); memset(lbuf, 0, sizeof lbuf); memset(dbuf, 0, sizeof dbuf); memset(bbuf, 0, sizeof bbuf);
}}

static void STALE(void) {{
    hpcnn_model_release(out_m);
    hpcnn_dataset_release(out_ds);
    hpcnn_fit_options_release(out_o);
    hpcnn_free(out_str);
    hpcnn_fit_options_release(o);
    hpcnn_dataset_release(ds);
    hpcnn_model_release(m);
    if (hpcnn_get_threads() != 2) hpcnn_set_threads(2);
}}

/* must_fail: the call must return an error; either way an error must leave a message. */
static void EXPECT(hpcnn_status s, int must_fail, const char* what) {{
    calls_++;
    const char* msg = hpcnn_last_error();
    if (must_fail) CHECK(s != HPCNN_OK, "%s returned HPCNN_OK", what);
    if (s != HPCNN_OK) CHECK(msg != NULL && msg[0] != '\\0', "%s returned %d without a message", what, (int)s);
    CHECK(s != HPCNN_INTERNAL, "%s: internal error: %s", what, msg);
}}

int main(void) {{
    char tmp[] = "/tmp/hpcnn-misuse-XXXXXX";
    if (!mkdtemp(tmp)) {{ perror("mkdtemp"); return 1; }}
    snprintf(path, sizeof path, "%s/file", tmp);
    snprintf(dir, sizeof dir, "%s/dir", tmp);
    /* A path in the temporary folder (a call may create it) that is not UTF-8: lone continuation and overlong bytes. */
    snprintf(bad_utf8, sizeof bad_utf8, "%s/\\xff\\xfe\\xc0\\x80 not utf-8", tmp);
    hpcnn_set_threads(2);
    released_m = small_model(); hpcnn_model_release(released_m);
    released_ds = small_dataset(); hpcnn_dataset_release(released_ds);
    hpcnn_fit_options_create(&released_o); hpcnn_fit_options_release(released_o);
    memset(&foreign, 0x5a, sizeof foreign);

""")
    out.write("\n".join(body))
    out.write(f"""

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\\n", tmp);
    printf("test_misuse: %ld misuse calls on {len(names)} functions of hpcnn.h\\n", calls_);
    return check_summary("test_misuse");
}}
""")
    out.close()
    open(out_path + ".functions", "w").write("\n".join(sorted(names)) + "\n")


main()
