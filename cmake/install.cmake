# install.cmake — install layout beyond the targets: systemd unit, tally.pc, bench tools, config, man pages.
#
# Included from the top-level CMakeLists.txt after the unit's configure_file.
# The unit and tally.pc name absolute paths, so they are generated again at
# install time from the prefix actually used (`cmake --install --prefix P`
# may differ from CMAKE_INSTALL_PREFIX); DESTDIR staging works as usual.

# ---- systemd unit directory ----------------------------------------------
# Absolute, or relative to the install prefix. Default: systemd's own
# directory when installing into /usr, else PREFIX/lib/systemd/system (on
# systemd's search path for /usr/local), so an install never writes outside
# its prefix unless asked to.
set(_tally_unitdir_default lib/systemd/system)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/")
  pkg_get_variable(_tally_sd_unitdir systemd systemdsystemunitdir)
  if(_tally_sd_unitdir)
    set(_tally_unitdir_default ${_tally_sd_unitdir})
  endif()
endif()
set(TALLY_SYSTEMD_UNITDIR ${_tally_unitdir_default} CACHE PATH
  "Where `cmake --install` puts tallyd.service (absolute, or relative to the prefix)")

# ---- programs beyond tallyd and tallyctl ----------------------------------
foreach(src ${TALLY_BENCHES})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "_" "-" exe "tally-${name}")
  install(TARGETS ${exe} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endforeach()

# ---- example configuration -----------------------------------------------
# GNUInstallDirs maps etc to /etc for a /usr prefix (and /etc/opt/P for
# /opt/P), but only in the FULL variable: DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}
# would land in /usr/etc. So: the full path when it lies outside the prefix,
# else the relative one, which follows `cmake --install --prefix`. The
# unit's --config path below is derived the same way.
if(IS_ABSOLUTE "${CMAKE_INSTALL_SYSCONFDIR}")
  set(_tally_sysconf "${CMAKE_INSTALL_SYSCONFDIR}")
else()
  string(FIND "${CMAKE_INSTALL_FULL_SYSCONFDIR}/" "${CMAKE_INSTALL_PREFIX}/" _tally_at)
  if(_tally_at EQUAL 0 AND NOT CMAKE_INSTALL_PREFIX STREQUAL "/")
    set(_tally_sysconf "${CMAKE_INSTALL_SYSCONFDIR}")
  else()
    set(_tally_sysconf "${CMAKE_INSTALL_FULL_SYSCONFDIR}")
  endif()
endif()
install(FILES config/tallyd.conf config/metrics.ini config/plans.ini config/tokens
  DESTINATION ${_tally_sysconf}/tally)

# ---- man pages -------------------------------------------------------------
install(FILES docs/man/tallyd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES docs/man/tallyctl.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES docs/man/tally.conf.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)

# ---- generated at install time: tallyd.service and tally.pc ---------------
# A static link needs libtally's dependencies (the client's only: the engine
# is never installed); the shared library links them.
set(TALLY_PC_REQUIRES_PRIVATE "nanomsg msgpack libsodium")
set(TALLY_PC_LIBS_PRIVATE "")
set(_tally_gen ${CMAKE_BINARY_DIR}/install-gen)
# The code below runs in cmake_install.cmake, where CMAKE_INSTALL_PREFIX is
# the prefix of this install; \${...} is expanded then, ${...} now.
install(CODE "
  function(tally_full_dir out dir)
    if(IS_ABSOLUTE \"\${dir}\")
      set(r \"\${dir}\")
    elseif(CMAKE_INSTALL_PREFIX STREQUAL \"/\")
      set(r \"/\${dir}\")
    else()
      set(r \"\${CMAKE_INSTALL_PREFIX}/\${dir}\")
    endif()
    set(\${out} \"\${r}\" PARENT_SCOPE)
  endfunction()
  tally_full_dir(CMAKE_INSTALL_FULL_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
  tally_full_dir(CMAKE_INSTALL_FULL_SYSCONFDIR \"${_tally_sysconf}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  set(TALLY_PC_REQUIRES_PRIVATE \"${TALLY_PC_REQUIRES_PRIVATE}\")
  set(TALLY_PC_LIBS_PRIVATE \"${TALLY_PC_LIBS_PRIVATE}\")
  set(TALLY_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  foreach(v LIBDIR INCLUDEDIR)
    if(v STREQUAL LIBDIR)
      set(d \"${CMAKE_INSTALL_LIBDIR}\")
    else()
      set(d \"${CMAKE_INSTALL_INCLUDEDIR}\")
    endif()
    if(IS_ABSOLUTE \"\${d}\")
      set(TALLY_PC_\${v} \"\${d}\")
    else()
      set(TALLY_PC_\${v} \"\\\${prefix}/\${d}\")
    endif()
  endforeach()
  configure_file(\"${CMAKE_SOURCE_DIR}/systemd/tallyd.service.in\" \"${_tally_gen}/tallyd.service\" @ONLY)
  configure_file(\"${CMAKE_SOURCE_DIR}/cmake/tally.pc.in\" \"${_tally_gen}/tally.pc\" @ONLY)
")
install(FILES ${_tally_gen}/tallyd.service DESTINATION ${TALLY_SYSTEMD_UNITDIR})
install(FILES ${_tally_gen}/tally.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
