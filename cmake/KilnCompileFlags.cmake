# Compile flags shared by every target built inside the project (library, tests,
# benchmarks, examples). They are PRIVATE on purpose: a project that links the
# installed kiln::kiln gets no warning flags and no -march=native from us.

option(KILN_NATIVE "Compile with -march=native (fast, but the binaries only run on CPUs like this one)" ON)

include(KilnSanitize)  # KILN_SANITIZE / KILN_FUZZ, applied below with the other flags

function(kiln_apply_compile_flags target)
  target_compile_options(${target} PRIVATE
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU,Clang>>:-Wall -Wextra -Wno-unused-parameter
      # Options structs are filled with designated initializers that name only what differs
      # from the defaults ({.requires_grad = true}); that is the API, not a mistake.
      -Wno-missing-field-initializers
      # kiln never reads errno; without this GCC cannot vectorise loops calling std::sqrt
      # (the fused Adam update, for one).
      -fno-math-errno>
    # nvcc forwards host-compiler warnings only when asked to. Relaxed constexpr lets device
    # code call constexpr standard-library functions (std::array's operator[], std::min),
    # which the functions shared by both backends (KILN_HOST_DEVICE) use.
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall --expt-relaxed-constexpr>)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # g++ 12 with AVX-512 miscompiles constant lists like {c, c, c, 0} into {c, c, c, c}
    # in its straight-line (SLP) vectoriser; tests/test_elementwise.cpp caught it. Loop
    # vectorisation, which our kernels rely on, is unaffected.
    # It also mis-passes by-value structs of constants (an options struct arrived with the
    # wrong padding) through dead-store elimination; -fno-dse avoids that.
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-tree-slp-vectorize -fno-dse>)
  endif()
  if(KILN_NATIVE)
    # Host C++ only: CUDA device code is targeted by CMAKE_CUDA_ARCHITECTURES instead.
    target_compile_options(${target} PRIVATE
      $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU,Clang>>:-march=native>)
  endif()
  kiln_apply_sanitizers(${target})
endfunction()
