#!/usr/bin/env python3
"""tests/emu/transform.py IN.cu OUT.cpp: a copy of a CUDA source that g++ compiles against the
emulation headers in tests/emu/include (the kernel source itself is never modified).

Rewrites, and nothing else (line numbers are kept, and a #line directive names the original file, so
compiler messages point into kernels/*.cu):
  kernel<<<grid, block[, smem[, stream]]>>>(args);
      -> ::emu::launch(::emu::Cfg(grid, block[, smem[, stream]]), "kernel", &kernel, args);
  __shared__ T name[N]...;          (a static shared array or scalar, inside a function)
      -> static char tag; T (&name)[N]... = *reinterpret_cast<T (*)[N]...>(::emu::static_shared(&tag, ...));
  extern __shared__ T name[];       (the launch's dynamic shared memory)
      -> #define name (reinterpret_cast<T *>(::emu::dynamic_shared()))
  #pragma unroll [n]                -> (removed: g++ would warn about an unknown pragma)
Comments are ignored when looking for these (a comment inside a launch's configuration or arguments is
dropped). Any `<<<` or `__shared__` the rules above do not cover is an error (exit status 1), so a new
construct fails the build instead of being emulated wrongly.
"""
import re
import sys


def mask_comments(src):
    """src with comments and string/char literals replaced by spaces (newlines kept)."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            j += 1
        else:
            i += 1
            continue
        for k in range(i, min(j, n)):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def fail(msg, src, pos):
    line = src.count("\n", 0, pos) + 1
    sys.stderr.write("%s:%d: transform.py: %s\n" % (sys.argv[1], line, msg))
    sys.exit(1)


def balanced(m, pos, open_c, close_c):
    """Index just past the bracket closing the one at m[pos]."""
    depth = 0
    for i in range(pos, len(m)):
        if m[i] == open_c:
            depth += 1
        elif m[i] == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def launches(src, m, edits):
    pos = 0
    while True:
        j = m.find("<<<", pos)
        if j < 0:
            return
        k = m.find(">>>", j)
        if k < 0:
            fail("unterminated <<<", src, j)
        # the kernel expression before <<<: identifier (with ::) and optional template arguments
        e = j
        while e > 0 and m[e - 1].isspace():
            e -= 1
        s = e
        if m[s - 1] == ">":
            depth = 0
            s -= 1
            while s >= 0:
                if m[s] == ">":
                    depth += 1
                elif m[s] == "<":
                    depth -= 1
                    if depth == 0:
                        break
                s -= 1
            while s > 0 and m[s - 1].isspace():
                s -= 1
        t = s
        while t > 0 and (m[t - 1].isalnum() or m[t - 1] in "_:"):
            t -= 1
        if t == s:
            fail("cannot find the kernel before <<<", src, j)
        kernel = re.sub(r"\s+", "", src[t:e])
        cfg = " ".join(m[j + 3 : k].split())  # comments masked, whitespace collapsed
        p = k + 3
        while p < len(m) and m[p].isspace():
            p += 1
        if p >= len(m) or m[p] != "(":
            fail("expected ( after >>>", src, k)
        q = balanced(m, p, "(", ")")
        if q < 0:
            fail("unbalanced launch arguments", src, p)
        args = " ".join(m[p + 1 : q - 1].split())
        text = '::emu::launch(::emu::Cfg(%s), "%s", &%s%s)' % (cfg, kernel, kernel, (", " + args) if args else "")
        edits.append((t, q, text))
        pos = q


SHARED = re.compile(
    r"(?P<ext>extern\s+)?__shared__\s+(?:__align__\s*\(\s*(?P<al>\d+)\s*\)\s+)?"
    r"(?P<type>(?:const\s+|volatile\s+)?[A-Za-z_][\w:]*(?:\s*<[^;{}()]*?>)?)\s+"
    r"(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\]]*\]\s*)*);"
)


def shared(src, m, edits):
    used = set()
    for mt in re.finditer(r"\b__shared__\b", m):
        start = mt.start()
        b = m.rfind("extern", 0, start)
        if b >= 0 and m[b + 6 : start].strip() == "" and (b == 0 or not (m[b - 1].isalnum() or m[b - 1] == "_")):
            start = b
        x = SHARED.match(m, start)
        if not x:
            fail("unsupported __shared__ declaration", src, mt.start())
        typ, name, dims = x.group("type"), x.group("name"), re.sub(r"\s+", "", x.group("dims"))
        align = "alignof(%s)" % typ
        if x.group("al"):
            align = "(alignof(%s) > %s ? alignof(%s) : %s)" % (typ, x.group("al"), typ, x.group("al"))
        if x.group("ext"):
            if dims != "[]":
                fail("extern __shared__ must be an unsized array", src, mt.start())
            text = "#define %s (reinterpret_cast<%s *>(::emu::dynamic_shared()))" % (name, typ)
            # a #define must start its own line
            line_start = m.rfind("\n", 0, x.start()) + 1
            if m[line_start : x.start()].strip():
                fail("extern __shared__ must start its line", src, x.start())
        else:
            if "[]" in dims:
                fail("unsized static __shared__ array", src, mt.start())
            n = 0
            while "%s_%d" % (name, n) in used:
                n += 1
            used.add("%s_%d" % (name, n))
            tag = "emu_shtag_%s_%d" % (name, n)
            if dims:
                ref = "%s (&%s)%s" % (typ, name, dims)
                ptr = "%s (*)%s" % (typ, dims)
            else:
                ref = "%s &%s" % (typ, name)
                ptr = "%s *" % typ
            text = "static char %s; %s = *reinterpret_cast<%s>(::emu::static_shared(&%s, sizeof(%s%s), %s));" % (
                tag,
                ref,
                ptr,
                tag,
                typ,
                dims,
                align,
            )
        edits.append((x.start(), x.end(), text))


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: transform.py IN.cu OUT.cpp\n")
        sys.exit(2)
    src = open(sys.argv[1], encoding="utf-8").read()
    m = mask_comments(src)
    edits = []
    launches(src, m, edits)
    shared(src, m, edits)
    for mt in re.finditer(r"^[ \t]*#[ \t]*pragma[ \t]+unroll\b[^\n]*", m, re.M):
        edits.append((mt.start(), mt.end(), ""))
    edits.sort()
    for a, b in zip(edits, edits[1:]):
        if a[1] > b[0]:
            fail("overlapping rewrites", src, b[0])
    out, pos = [], 0
    for s, e, text in edits:
        out.append(src[pos:s])
        out.append(text)
        out.append("\n" * src.count("\n", s, e))  # keep the line numbers
        pos = e
    out.append(src[pos:])
    body = "".join(out)
    path = sys.argv[1].replace("\\", "\\\\").replace('"', '\\"')
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write('// generated by tests/emu/transform.py from %s: do not edit\n' % sys.argv[1])
        f.write("#include <cuda_runtime.h>\n")
        f.write('#line 1 "%s"\n' % path)
        f.write(body)


if __name__ == "__main__":
    main()
