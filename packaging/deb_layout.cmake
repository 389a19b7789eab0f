# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS): the install rules put the config under the
# prefix (GNUInstallDirs: etc/ relative), so a staged install stays in its folder. In the package,
# whose prefix is /usr, the Filesystem Hierarchy Standard wants /etc, not /usr/etc; and the unit goes
# to /lib/systemd/system, where Debian 12's debhelper puts units (haproxy's among them: bookworm's
# usr-merge moratorium keeps files out of the /usr aliases of /lib).
file(GLOB staged_etc "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/usr/etc" "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/usr/etc")
foreach(usr_etc IN LISTS staged_etc)
  get_filename_component(root "${usr_etc}/../.." ABSOLUTE)
  file(RENAME "${usr_etc}" "${root}/etc")
endforeach()
file(GLOB staged_units "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/usr/lib/systemd" "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/usr/lib/systemd")
foreach(usr_systemd IN LISTS staged_units)
  get_filename_component(root "${usr_systemd}/../../.." ABSOLUTE)
  file(MAKE_DIRECTORY "${root}/lib")
  file(RENAME "${usr_systemd}" "${root}/lib/systemd")
  file(GLOB left "${root}/usr/lib/*")
  if(NOT left)
    file(REMOVE_RECURSE "${root}/usr/lib")  # nothing else of the package is under usr/lib
  endif()
endforeach()
