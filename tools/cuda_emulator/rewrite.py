#!/usr/bin/env python3
"""Rewrites a CUDA source (cuda/*.cu or *.cuh) into C++ that cpemu.h can compile.

    python3 rewrite.py cuda/softmax.cu > softmax_emu.cpp

Two rewrites, nothing else changes:
  kernel<<<grid, block, smem, stream>>>(args)
      -> cpemu::launch_on(stream, grid, block, smem, [=](auto&... a) { kernel(a...); }, args)
     The kernel is called through a generic lambda so its template arguments are deduced
     from the call, as nvcc does (`map_1d_kernel<<<...>>>(f, out, ...)`); it captures by
     value, because the launch runs after the launching function has returned (a kernel
     named by a local function pointer must outlive it). A launch that names no stream goes
     to the legacy default stream (nullptr), as in CUDA.
  extern __shared__ [__align__(N)] unsigned char name[];
      -> unsigned char* name = cpemu::dyn_smem();
"""
import re
import sys


def split_top_level(s):
    """Splits s at the commas outside any (), [] or {}."""
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def kernel_start(src, end):
    """Start of the kernel expression ending at `end` (name, ::, template arguments)."""
    k = end
    while k > 0 and src[k - 1].isspace():  # `kernel<T>\n    <<<...>>>`
        k -= 1
    depth = 0
    while k > 0:
        c = src[k - 1]
        if c == '>':
            depth += 1
        elif c == '<':
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c in '_:'):
            break
        k -= 1
    return k


def matching_paren(src, open_at):
    depth = 0
    for m in range(open_at, len(src)):
        if src[m] == '(':
            depth += 1
        elif src[m] == ')':
            depth -= 1
            if depth == 0:
                return m
    raise ValueError('unbalanced parentheses after a launch')


def rewrite(src):
    src = re.sub(r'extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?unsigned char\s+(\w+)\[\];',
                 r'unsigned char* \1 = cpemu::dyn_smem();', src)
    out, i, launches = [], 0, 0
    while True:
        j = src.find('<<<', i)
        if j < 0:
            out.append(src[i:])
            break
        k = kernel_start(src, j)
        kernel = src[k:j].strip()
        e = src.find('>>>', j)
        config = split_top_level(src[j + 3:e])
        config += ['0'] * (3 - len(config))  # smem defaults to 0
        if len(config) < 4:
            config.append('nullptr')  # the legacy default stream
        a = e + 3
        while src[a].isspace():
            a += 1
        assert src[a] == '(', 'no argument list after ' + src[j:a + 20]
        m = matching_paren(src, a)
        args = src[a + 1:m].strip()
        call = '[=](auto&... cpemu_a) { %s(cpemu_a...); }' % kernel
        out.append(src[i:k])
        out.append('cpemu::launch_on(%s, %s, %s, %s, %s%s)' % (config[3], config[0], config[1], config[2], call,
                                                               ', ' + args if args else ''))
        i = m + 1
        launches += 1
    return ''.join(out), launches


if __name__ == '__main__':
    text, n = rewrite(open(sys.argv[1]).read())
    sys.stderr.write('%s: %d launches rewritten\n' % (sys.argv[1], n))
    sys.stdout.write(text)
