// Windows error numbers as Node names them: the libuv error numbers that
// util.getSystemErrorName() knows (what node:dgram reports), translated from
// WSA and Win32 errors. Used by backend_iocp.cc; every function here may be
// called from any thread (they read the calling thread's last error).
#ifndef DGRAM_RING_WIN_ERRORS_H_
#define DGRAM_RING_WIN_ERRORS_H_

#include <winsock2.h>
#include <windows.h>

#include "ring.h"

namespace dgram_ring {

// libuv's error numbers on Windows (include/uv/errno.h: UV__E* where _WIN32
// has no errno of its own). They are what Node's util.getSystemErrorName()
// names on Windows, so JS gets `code: 'EADDRINUSE'` and the like.
enum UvError : int {
  kUvEACCES = -4092,
  kUvEADDRINUSE = -4091,
  kUvEADDRNOTAVAIL = -4090,
  kUvEAFNOSUPPORT = -4089,
  kUvEAGAIN = -4088,
  kUvEALREADY = -4084,
  kUvEBADF = -4083,
  kUvECANCELED = -4081,
  kUvECONNABORTED = -4079,
  kUvECONNREFUSED = -4078,
  kUvECONNRESET = -4077,
  kUvEFAULT = -4074,
  kUvEHOSTUNREACH = -4073,
  kUvEINVAL = -4071,
  kUvEISCONN = -4069,
  kUvEMFILE = -4066,
  kUvEMSGSIZE = -4065,
  kUvENETDOWN = -4063,
  kUvENETUNREACH = -4062,
  kUvENOBUFS = -4060,
  kUvENOENT = -4058,
  kUvENOMEM = -4057,
  kUvENOTCONN = -4053,
  kUvENOTSOCK = -4050,
  kUvENOTSUP = -4049,
  kUvEPERM = -4048,
  kUvEPIPE = -4047,
  kUvEPROTONOSUPPORT = -4045,
  kUvETIMEDOUT = -4039,
  kUvENOPROTOOPT = -4035,
  kUvEHOSTDOWN = -4031,
  kUvESOCKTNOSUPPORT = -4025,
  kUvUNKNOWN = -4094,
};

// A WSA or Win32 error as a libuv error number (kUvUNKNOWN if it has none).
int TranslateError(DWORD error);

// The calling thread's WSAGetLastError() / GetLastError(), with the call that failed.
inline SysError WsaError(const char* syscall) { return SysError{TranslateError(WSAGetLastError()), syscall}; }
inline SysError Win32Error(const char* syscall) { return SysError{TranslateError(GetLastError()), syscall}; }

}  // namespace dgram_ring

#endif  // DGRAM_RING_WIN_ERRORS_H_
