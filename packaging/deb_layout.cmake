# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS): the install rules put the config under the
# prefix (GNUInstallDirs: etc/ relative), so a staged install stays in its folder. In the package,
# whose prefix is /usr, the Filesystem Hierarchy Standard wants /etc, not /usr/etc.
file(GLOB staged_etc "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/usr/etc" "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/usr/etc")
foreach(usr_etc IN LISTS staged_etc)
  get_filename_component(root "${usr_etc}/../.." ABSOLUTE)
  file(RENAME "${usr_etc}" "${root}/etc")
endforeach()
