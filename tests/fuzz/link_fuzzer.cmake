# Links one fuzzer, run at build time by the custom command of tests/fuzz/CMakeLists.txt:
#   cmake -DCOMPILER=clang++-19 -DOUTPUT=bin -DFLAGS=a|b -DOBJECTS=x.o|y.o -DSOURCES=x.cc|y.cc
#         -DSKIP_CODE=77 -P link_fuzzer.cmake
# While one of the sources is still a placeholder (nothing but comments and blank lines, as a
# new file is before its engineer fills it in), the link would only fail with undefined symbols
# and break the whole build. Then OUTPUT becomes a stub script that reports SKIP to ctest; it is
# replaced by the real fuzzer as soon as a source changes.

foreach(variable COMPILER OUTPUT FLAGS OBJECTS SOURCES SKIP_CODE)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "link_fuzzer.cmake: -D${variable}=... is required")
  endif()
endforeach()
string(REPLACE "|" ";" flags "${FLAGS}")
string(REPLACE "|" ";" objects "${OBJECTS}")
string(REPLACE "|" ";" sources "${SOURCES}")
get_filename_component(name "${OUTPUT}" NAME)

set(placeholders "")
foreach(source IN LISTS sources)
  file(STRINGS "${source}" lines)
  set(has_code FALSE)
  foreach(line IN LISTS lines)
    string(STRIP "${line}" line)
    if(NOT line STREQUAL "" AND NOT line MATCHES "^//")
      set(has_code TRUE)
      break()
    endif()
  endforeach()
  if(NOT has_code)
    list(APPEND placeholders "${source}")
  endif()
endforeach()

file(REMOVE "${OUTPUT}")
if(placeholders)
  list(JOIN placeholders ", " placeholder_text)
  set(reason "${name} not built: placeholder source(s) ${placeholder_text}")
  message(STATUS "fuzz: ${reason}")
  file(WRITE "${OUTPUT}" "#!/bin/sh\n# Stub written by link_fuzzer.cmake.\n"
                         "echo 'SKIP: ${reason}'\nexit ${SKIP_CODE}\n")
  file(CHMOD "${OUTPUT}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                     GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  return()
endif()

execute_process(COMMAND "${COMPILER}" ${flags} ${objects} -o "${OUTPUT}" RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  file(REMOVE "${OUTPUT}")
  message(FATAL_ERROR "fuzz: linking ${name} failed")
endif()
