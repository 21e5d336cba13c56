# ctest `install_consumer` (cmake -P): install kiln into a scratch prefix, then configure,
# build and run tests/install/ against it, the way a user's project would use kiln.
# Inputs (-D): KILN_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR CONFIG GENERATOR MAKE_PROGRAM
#              CXX_COMPILER Eigen3_DIR [CUDAToolkit_ROOT]

# Runs a command, echoing it; stops the test with its output when it fails.
function(run_step what)
  message(STATUS "install_consumer: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc}):\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

if(NOT CONFIG)
  set(CONFIG Release)
endif()
set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})  # from scratch every time: a stale install proves nothing

run_step("install kiln into ${prefix}"
  ${CMAKE_COMMAND} --install ${KILN_BINARY_DIR} --config ${CONFIG} --prefix ${prefix})

set(configure_args -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${GENERATOR}
  -DCMAKE_BUILD_TYPE=${CONFIG} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  -DCMAKE_PREFIX_PATH=${prefix} -DEigen3_DIR=${Eigen3_DIR})
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(CUDAToolkit_ROOT)
  list(APPEND configure_args -DCUDAToolkit_ROOT=${CUDAToolkit_ROOT})
endif()
run_step("configure tests/install with find_package(kiln)" ${CMAKE_COMMAND} ${configure_args})
run_step("build the consumer" ${CMAKE_COMMAND} --build ${build} --config ${CONFIG})

find_program(consumer kiln_consumer PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH REQUIRED)
run_step("run the consumer" ${consumer})
message(STATUS "${step_output}")
