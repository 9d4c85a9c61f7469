# CMake package of HpCnn's C library, installed by ./build/install.sh PREFIX into PREFIX/lib/cmake/hpcnn/.
#   find_package(hpcnn REQUIRED)   (with -DCMAKE_PREFIX_PATH=PREFIX unless PREFIX is a system prefix)
#   target_link_libraries(app PRIVATE hpcnn::hpcnn)
# Imported targets:
#   hpcnn::hpcnn         libhpcnn.so (x86-64-v3: AVX2 + FMA) and the include folder with hpcnn.h
#   hpcnn::hpcnn_avx512  libhpcnn-avx512.so: the same ABI with AVX-512 register tiles (CPUs with AVX-512 F/BW/CD/DQ/VL)
# Everything is found relative to this file, so an installed prefix can be moved.
get_filename_component(_hpcnn_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

foreach(_hpcnn_file IN ITEMS include/hpcnn.h lib/libhpcnn.so lib/libhpcnn-avx512.so)
  if(NOT EXISTS "${_hpcnn_prefix}/${_hpcnn_file}")
    set(hpcnn_FOUND FALSE)
    set(hpcnn_NOT_FOUND_MESSAGE "${_hpcnn_prefix}/${_hpcnn_file} is missing: install HpCnn again (./build/install.sh ${_hpcnn_prefix})")
    return()
  endif()
endforeach()

foreach(_hpcnn_target IN ITEMS hpcnn hpcnn_avx512)
  if(NOT TARGET hpcnn::${_hpcnn_target})
    string(REPLACE "_" "-" _hpcnn_file "lib${_hpcnn_target}.so")
    add_library(hpcnn::${_hpcnn_target} SHARED IMPORTED)
    set_target_properties(hpcnn::${_hpcnn_target} PROPERTIES
      IMPORTED_LOCATION "${_hpcnn_prefix}/lib/${_hpcnn_file}"
      # NativeAOT writes no SONAME: linked as -l, a program then needs "libhpcnn.so", not this absolute path.
      IMPORTED_NO_SONAME TRUE
      INTERFACE_INCLUDE_DIRECTORIES "${_hpcnn_prefix}/include")
  endif()
endforeach()

unset(_hpcnn_file)
unset(_hpcnn_target)
unset(_hpcnn_prefix)
