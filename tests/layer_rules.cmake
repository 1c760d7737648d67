# tests/layer_rules.cmake: the include rules of docs/architecture.md ("Layers"), checked by
# reading the headers (ctest dml_layer_rules):
#   1. Eigen is included only under dml/backend/cpu/.
#   2. A header of dml/core/ includes only other core headers and dml/config.hpp: core depends
#      on nothing above it (no backend/, no CUDA).
# Usage: cmake -DDML_INCLUDE_DIR=<directory holding dml/> -P tests/layer_rules.cmake
# Prints every offending line as `file: line` and fails when there is one.
if(NOT DML_INCLUDE_DIR)
  message(FATAL_ERROR "layer_rules.cmake: pass -DDML_INCLUDE_DIR=<directory holding dml/>")
endif()
if(NOT IS_DIRECTORY "${DML_INCLUDE_DIR}/dml")
  message(FATAL_ERROR "layer_rules.cmake: no dml/ directory under ${DML_INCLUDE_DIR}")
endif()

file(GLOB_RECURSE _headers RELATIVE "${DML_INCLUDE_DIR}"
  "${DML_INCLUDE_DIR}/dml/*.hpp" "${DML_INCLUDE_DIR}/dml/*.cuh" "${DML_INCLUDE_DIR}/dml/*.h")
list(SORT _headers)
set(_violations "")
set(_checked 0)
foreach(_h IN LISTS _headers)
  math(EXPR _checked "${_checked} + 1")
  file(STRINGS "${DML_INCLUDE_DIR}/${_h}" _includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  foreach(_line IN LISTS _includes)
    # Rule 1: Eigen (and Eigen's unsupported modules) only in backend/cpu.
    if(_line MATCHES "#[ \t]*include[ \t]*[<\"](unsupported/)?Eigen/" AND NOT _h MATCHES "^dml/backend/cpu/")
      list(APPEND _violations "${_h}: ${_line}   (Eigen outside dml/backend/cpu/)")
    endif()
    # Rule 2: core includes only core and config.hpp (system headers in <> are fine).
    if(_h MATCHES "^dml/core/" AND _line MATCHES "#[ \t]*include[ \t]*\"([^\"]*)\"")
      set(_target "${CMAKE_MATCH_1}")
      if(NOT _target MATCHES "^[A-Za-z0-9_]+\\.hpp$" AND NOT _target STREQUAL "../config.hpp")
        list(APPEND _violations "${_h}: ${_line}   (core/ includes something above core)")
      endif()
    endif()
  endforeach()
endforeach()

if(_checked EQUAL 0)
  message(FATAL_ERROR "layer_rules.cmake: no headers found under ${DML_INCLUDE_DIR}/dml")
endif()
list(LENGTH _violations _n)
if(_n GREATER 0)
  list(JOIN _violations "\n  " _text)
  message(FATAL_ERROR "layer rules (docs/architecture.md) broken in ${_n} place(s):\n  ${_text}")
endif()
message(STATUS "layer rules hold in ${_checked} headers under ${DML_INCLUDE_DIR}/dml")
