/* Binds the addon's Node-API imports to whatever executable hosts it.
 *
 * mingw-node-gyp.sh links the addon against a delay-import library for
 * "node.exe" (from node-api-headers' node_api.def). Resolving that name
 * literally would fail in a renamed node.exe or in Electron, so before the
 * first import is resolved this hook answers with the host process itself,
 * as node-gyp's win_delay_load_hook.cc does for MSVC builds. */
#include <windows.h>
#include <delayimp.h>
#include <string.h>

static FARPROC WINAPI LoadHostExecutable(unsigned notification, PDelayLoadInfo info) {
  if (notification == dliNotePreLoadLibrary && _stricmp(info->szDll, "node.exe") == 0)
    return (FARPROC)GetModuleHandleA(NULL);
  return NULL;
}

/* The delay-load helper calls this hook before loading each DLL. */
PfnDliHook __pfnDliNotifyHook2 = LoadHostExecutable;
