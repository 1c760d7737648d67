# FindCUDNN: locate NVIDIA cuDNN (header cudnn.h + library libcudnn).
#
# Hints: CUDNN_ROOT (variable or environment), CUDAToolkit_ROOT / CUDA_PATH, the CUDA toolkit
# found by find_package(CUDAToolkit), /usr/local/cuda.
#
# Results:
#   CUDNN_FOUND, CUDNN_VERSION (MAJOR.MINOR.PATCH from cudnn_version.h),
#   CUDNN_VERSION_MAJOR/MINOR/PATCH, CUDNN_INCLUDE_DIRS, CUDNN_LIBRARIES
#   imported target CUDNN::cudnn
# Cache: CUDNN_INCLUDE_DIR, CUDNN_LIBRARY

set(_cudnn_hints "")
foreach(_dir IN ITEMS "${CUDAToolkit_ROOT}" "$ENV{CUDAToolkit_ROOT}" "$ENV{CUDA_PATH}"
                      "${CUDAToolkit_LIBRARY_ROOT}" /usr/local/cuda)
  if(_dir)
    list(APPEND _cudnn_hints "${_dir}")
  endif()
endforeach()
if(CUDAToolkit_INCLUDE_DIRS)
  list(APPEND _cudnn_hints ${CUDAToolkit_INCLUDE_DIRS})
endif()
if(CUDAToolkit_LIBRARY_DIR)
  list(APPEND _cudnn_hints "${CUDAToolkit_LIBRARY_DIR}")
endif()

# CUDNN_ROOT / ENV{CUDNN_ROOT} are searched first by find_* (policy CMP0074).
find_path(CUDNN_INCLUDE_DIR cudnn.h
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES include include/x86_64-linux-gnu targets/x86_64-linux/include)
find_library(CUDNN_LIBRARY cudnn
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES lib64 lib lib/x86_64-linux-gnu targets/x86_64-linux/lib)
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)

unset(CUDNN_VERSION)
if(CUDNN_INCLUDE_DIR)
  # cuDNN >= 8 keeps the version in cudnn_version.h; older releases in cudnn.h.
  foreach(_hdr IN ITEMS cudnn_version.h cudnn.h)
    if(EXISTS "${CUDNN_INCLUDE_DIR}/${_hdr}")
      file(STRINGS "${CUDNN_INCLUDE_DIR}/${_hdr}" _cudnn_defs
        REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
      foreach(_part MAJOR MINOR PATCHLEVEL)
        string(REGEX MATCH "CUDNN_${_part} +([0-9]+)" _m "${_cudnn_defs}")
        set(_cudnn_${_part} "${CMAKE_MATCH_1}")
      endforeach()
      if(NOT _cudnn_MAJOR STREQUAL "")
        set(CUDNN_VERSION_MAJOR ${_cudnn_MAJOR})
        set(CUDNN_VERSION_MINOR ${_cudnn_MINOR})
        set(CUDNN_VERSION_PATCH ${_cudnn_PATCHLEVEL})
        set(CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
        break()
      endif()
    endif()
  endforeach()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
  VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND)
  set(CUDNN_INCLUDE_DIRS "${CUDNN_INCLUDE_DIR}")
  set(CUDNN_LIBRARIES "${CUDNN_LIBRARY}")
  if(NOT TARGET CUDNN::cudnn)
    add_library(CUDNN::cudnn UNKNOWN IMPORTED)
    set_target_properties(CUDNN::cudnn PROPERTIES
      IMPORTED_LOCATION "${CUDNN_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
  endif()
endif()

unset(_cudnn_hints)
unset(_cudnn_defs)
