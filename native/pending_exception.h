// A JS exception left pending by a failed N-API call would surface later from
// an unrelated call: the binding's files clear it with TakePendingException.
// Loop thread (any N-API call's thread).
#ifndef DGRAM_RING_PENDING_EXCEPTION_H_
#define DGRAM_RING_PENDING_EXCEPTION_H_

#include <node_api.h>

namespace dgram_ring {

// Clears the pending exception; returns it (or nullptr).
inline napi_value TakePendingException(napi_env env) {
  bool pending = false;
  napi_value error = nullptr;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &error);
  return error;
}

}  // namespace dgram_ring

#endif  // DGRAM_RING_PENDING_EXCEPTION_H_
