// ThreadSanitizer's options, compiled into the TSan binaries (the daemon sluice_tsan and the TSan
// unit tests) so that they hold whoever starts them: the first race ends the process with exit
// code 66 and the report on stderr. A daemon that a test did not stop fails that test ("exited on
// its own"); TSAN_OPTIONS in the environment still adds to or overrides these.
extern "C" const char* __tsan_default_options() { return "halt_on_error=1:second_deadlock_stack=1"; }
