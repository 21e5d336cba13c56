# Sanitizer and fuzzing builds. Both are off by default; `make test-sanitize` and
# `make fuzz` configure their own build folders with them.
#
#   -DKILN_SANITIZE=address,undefined   every kiln target (library, tests, examples,
#                                       benchmarks) compiled and linked with
#                                       -fsanitize=address,undefined; ASan brings
#                                       LeakSanitizer along on Linux. Any list that
#                                       -fsanitize accepts works (e.g. "thread").
#   -DKILN_FUZZ=ON                      (clang only) also instruments everything for
#                                       libFuzzer's coverage and builds fuzz/, one
#                                       fuzzer per file reader. Implies address,undefined
#                                       when KILN_SANITIZE is empty.
#
# kiln_apply_sanitizers(target) is called by kiln_apply_compile_flags, so every target
# that gets kiln's warnings gets the sanitizers too.

set(_kiln_sanitize_doc
  "Sanitizers for every kiln target, as -fsanitize= takes them, e.g. address,undefined (empty = none)")
set(KILN_SANITIZE "" CACHE STRING "${_kiln_sanitize_doc}")
option(KILN_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)" OFF)

if(KILN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "KILN_FUZZ=ON needs clang (libFuzzer is part of clang), got "
                        "${CMAKE_CXX_COMPILER_ID}: configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(KILN_SANITIZE STREQUAL "")
    # A fuzzer without ASan finds only the crashes that happen to segfault.
    set(KILN_SANITIZE "address,undefined" CACHE STRING "${_kiln_sanitize_doc}" FORCE)
  endif()
endif()

if(NOT KILN_SANITIZE STREQUAL "")
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang)$")
    message(FATAL_ERROR "KILN_SANITIZE needs g++ or clang, got ${CMAKE_CXX_COMPILER_ID}")
  endif()
  message(STATUS "kiln: sanitizers ${KILN_SANITIZE}")
endif()

function(kiln_apply_sanitizers target)
  if(KILN_SANITIZE STREQUAL "")
    return()
  endif()
  set(sanitize -fsanitize=${KILN_SANITIZE})
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:
    ${sanitize}
    # Readable stack traces in every report, at a small cost.
    -fno-omit-frame-pointer
    # Stop at the first UBSan finding: by default UBSan prints and carries on, and a test
    # that printed "runtime error" would still pass.
    -fno-sanitize-recover=all>)
  if(KILN_FUZZ)
    # Coverage feedback for libFuzzer in every object; only the fuzzers link its main().
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
  endif()
  # Whatever links a sanitized libkiln.a needs the sanitizer runtimes too, a program
  # built against the installed package included: INTERFACE for the library.
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "STATIC_LIBRARY")
    target_link_options(${target} INTERFACE ${sanitize})
  else()
    target_link_options(${target} PRIVATE ${sanitize})
  endif()
endfunction()
