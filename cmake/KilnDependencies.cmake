# Third-party dependencies. Every one is a Debian package (`make deps` installs them);
# the header-only ones can also come from a copied .deps/ folder (`make deps-copy`),
# for a machine that has no network, e.g. a GPU box: HINTS are searched before the
# system paths.

set(KILN_DEPS_DIR ${PROJECT_SOURCE_DIR}/.deps)

# Eigen: our CPU GEMM kernels map Eigen matrices over kiln buffers.
find_package(Eigen3 3.4 REQUIRED NO_MODULE HINTS ${KILN_DEPS_DIR}/eigen3)

# OpenMP: the parallel-for over outer dimensions in every CPU kernel (GCC's libgomp).
find_package(OpenMP REQUIRED COMPONENTS CXX)

# nlohmann-json: parses and writes the JSON header of .safetensors files. A well-kept,
# header-only parser beats writing our own for a format we must read defensively.
find_package(nlohmann_json 3.10 REQUIRED HINTS ${KILN_DEPS_DIR}/nlohmann)

# OpenBLAS behind Eigen's GEMM (EIGEN_USE_BLAS). Off until measurements decide.
option(KILN_OPENBLAS "Route Eigen's matrix products through OpenBLAS (libopenblas-dev)" OFF)
if(KILN_OPENBLAS)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS REQUIRED)  # provides BLAS::BLAS
endif()

# doctest, for tests/ only. Debian's doctestConfig.cmake hard-codes /usr, so a copied
# .deps/doctest holds just the header and we make the imported target ourselves.
function(kiln_find_doctest)
  if(TARGET doctest::doctest)
    return()
  endif()
  find_package(doctest CONFIG QUIET)
  if(NOT doctest_FOUND)
    find_path(KILN_DOCTEST_INCLUDE_DIR doctest/doctest.h
      HINTS ${KILN_DEPS_DIR}/doctest/include
      DOC "Folder holding doctest/doctest.h")
    if(NOT KILN_DOCTEST_INCLUDE_DIR)
      message(FATAL_ERROR "doctest not found: `make deps` (doctest-dev) or `make deps-copy` into .deps/")
    endif()
    add_library(doctest::doctest INTERFACE IMPORTED GLOBAL)
    target_include_directories(doctest::doctest INTERFACE ${KILN_DOCTEST_INCLUDE_DIR})
  endif()
endfunction()
