# KILN_CUDA=AUTO|ON|OFF decides whether the CUDA backend (cuda/) is compiled.
#   AUTO  build it when both nvcc and cuBLAS are found, else say why and go on CPU-only;
#   ON    build it or stop with an error;
#   OFF   don't look.
# Sets KILN_WITH_CUDA (TRUE/FALSE) for the rest of the build.

set(KILN_CUDA "AUTO" CACHE STRING "Build the CUDA backend: AUTO (when nvcc and cuBLAS are found), ON, OFF")
set_property(CACHE KILN_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${KILN_CUDA}" _kiln_cuda_mode)
if(NOT _kiln_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "KILN_CUDA must be AUTO, ON or OFF (got '${KILN_CUDA}')")
endif()

# ---- look for nvcc, then for the toolkit (cuBLAS) that goes with it ----------------
set(_kiln_cuda_missing "")
if(NOT _kiln_cuda_mode STREQUAL "OFF")
  # nvcc must drive the same host compiler as the rest of kiln (one C++ ABI).
  if(NOT DEFINED CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX})
    set(CMAKE_CUDA_HOST_COMPILER ${CMAKE_CXX_COMPILER} CACHE FILEPATH "Host compiler used by nvcc")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    set(_kiln_cuda_missing "no CUDA compiler (nvcc) found; set CMAKE_CUDA_COMPILER or put nvcc on PATH")
  else()
    # Take cuBLAS from the toolkit that nvcc belongs to, not from another install.
    if(NOT DEFINED CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT})
      get_filename_component(CUDAToolkit_ROOT "${CMAKE_CUDA_COMPILER}/../.." ABSOLUTE)
    endif()
    find_package(CUDAToolkit QUIET)
    if(NOT TARGET CUDA::cublas)
      set(_kiln_cuda_missing "nvcc found (${CMAKE_CUDA_COMPILER}) but not cuBLAS")
    endif()
  endif()
endif()

# ---- decide ----------------------------------------------------------------------
set(KILN_WITH_CUDA FALSE)
if(_kiln_cuda_mode STREQUAL "OFF")
  message(STATUS "kiln: CUDA backend off (KILN_CUDA=OFF)")
elseif(_kiln_cuda_missing STREQUAL "")
  set(KILN_WITH_CUDA TRUE)
elseif(_kiln_cuda_mode STREQUAL "ON")
  message(FATAL_ERROR "KILN_CUDA=ON but the CUDA backend cannot be built: ${_kiln_cuda_missing}")
else()
  message(STATUS "kiln: CUDA backend off (${_kiln_cuda_missing})")
endif()

if(KILN_WITH_CUDA)
  # A100 (sm_80) and H100/H200 (sm_90) by default; -DCMAKE_CUDA_ARCHITECTURES=... overrides.
  # Must be set before enable_language, which otherwise picks nvcc's own default.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "GPU architectures to compile the CUDA kernels for" FORCE)
  endif()
  enable_language(CUDA)
  # .cu files include kiln headers, so they are C++20 like the rest (CMake also applies
  # the target's CXX_STANDARD to CUDA sources). CMake < 3.26 does not know nvcc's C++20
  # flag and refuses the target; teach it what 3.26 knows (nvcc >= 12 has -std=c++20).
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION AND CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA"
     AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  # kiln links CUDA::cudart (shared) itself; without this CMake would also link the
  # static cudart into every program that links kiln, two runtimes in one process.
  set(CMAKE_CUDA_RUNTIME_LIBRARY None)
  message(STATUS "kiln: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
endif()
