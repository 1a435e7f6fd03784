// The N-API binding: the RingSocket class JS sees (lib/socket.ts wraps it),
// and Ring, the Sink that turns a backend's completions into one JS call per
// batch. Every function here runs on the loop thread of the environment that
// created the socket, except Ring::Wake.
//
// Lifetime: see ring.h. In short:
// - Ring outlives its JS object when needed: it is freed once its backend has
//   closed and its wake function (a threadsafe function) has been finalized.
// - The JS object is held strongly while JS has granted credits (a consumer
//   is waiting) and while it closes (its close callback must run); a stream
//   nobody reads and nobody references can be collected, and its finalizer
//   closes the socket, discarding what the kernel still holds.
// - An async environment cleanup hook closes the socket at process exit or
//   worker termination, likewise discarding.
#include <napi.h>
#include <uv.h>

#include <atomic>
#include <cstring>
#include <new>

#include "batch.h"
#include "faults.h"
#include "pending_exception.h"
#include "recycle.h"
#include "ring.h"
#include "send.h"
#include "slab.h"
#ifdef __linux__
#include "uring.h"
#endif

namespace dgram_ring {

namespace {

Napi::Error SystemError(Napi::Env env, SysError error) {
  Napi::Error e = Napi::Error::New(env, std::string(error.syscall) + " failed");
  e.Set("errno", Napi::Number::New(env, error.code));
  e.Set("syscall", Napi::String::New(env, error.syscall));
  return e;
}

Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// Counters the binding keeps, with the backend's.
struct RingStats {
  uint64_t received = 0;   // datagrams that reached JS
  uint64_t bytes = 0;
  uint64_t truncated = 0;
  uint64_t batches = 0;
  uint64_t discarded = 0;  // taken off the socket but never reached JS (see Cross)
  uint64_t transient_errors = 0;  // Sink::Warn reports
  BackendStats backend;
};

class RingSocket;

class Ring final : public Sink {
 public:
  Ring(Napi::Env env, RingSocket* owner) : env_(env), owner_(owner) {}

  // Picks and opens the backend. Returns false with a pending JS exception.
  bool Open(const std::string& backend_name, const Options& options);

  uint32_t Credits() const override { return credits_; }
  void Deliver(const Completion* items, size_t count, Slab* slab) override;
  void Fail(SysError error) override;
  void Warn(SysError error) override;
  // Any thread.
  void Wake() override {
    if (!wake_pending_.exchange(true)) napi_call_threadsafe_function(wake_, nullptr, napi_tsfn_nonblocking);
  }

  void Grant(uint32_t credits);
  // The consumer gives every batch back (batches({recycle: true})): lend through the Recycler.
  void Recycling() {
    if (recycler_) recycler_->Enable();
  }
  void SetRef(bool keep_alive);
  RingStats Stats() const;
  const char* BackendName() const { return backend_->Name(); }
  int ReceiveBufferSize() const { return backend_->ReceiveBufferSize(); }
  SysError LocalAddress(uint8_t addr[16], int* family, uint16_t* port) const {
    return backend_->LocalAddress(addr, family, port);
  }
  bool IsOpen() const { return state_ == State::kOpen; }
  bool IsClosing() const { return state_ == State::kClosing; }

  // Sending (send.h): only while open.
  uint32_t Send(const SendBatch& batch) { return backend_->Send(batch); }
  // Calls `callback` once the socket may take more; 0, or a negative libuv
  // error (UV_ENOTSUP: the backend cannot watch for that). A second call
  // replaces the first. Forgotten when the socket closes.
  int WaitWritable(Napi::Function callback);

  // Starts closing, or turns a drain under way into a discard; `callback`
  // (may be empty) is called once closed, unless the environment is gone by
  // then. The JS object is held until then.
  void Close(Napi::Function callback, CloseMode mode);
  // The JS object was garbage-collected: close without telling anyone.
  void Orphan();

 private:
  enum class State { kOpen, kClosing, kClosed };

  bool Cross(const Completion* items, size_t count, size_t bytes, Slab* slab);
  bool MakeBatchMemory(const Completion* items, size_t count, size_t bytes, Slab* slab, napi_value args[3]);
  bool CrossingFailed(size_t count, const char* call);
  void Report(const char* listener, SysError error);
  void Closed();
  void UpdateHold();
  void MaybeDelete() {
    if (state_ == State::kClosed && (wake_ == nullptr || wake_finalized_)) delete this;
  }
  static void OnWakeCall(napi_env env, napi_value js_callback, void* context, void* data);
  static void OnWakeFinalize(napi_env env, void* data, void* hint);
  static void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg);

  napi_env env_;
  RingSocket* owner_;  // nullptr once the JS object is collected or the environment tears down
  std::unique_ptr<Backend> backend_;
  std::shared_ptr<Recycler> recycler_;  // batch memory reused for a recycling consumer
  State state_ = State::kClosed;
  CloseMode close_mode_ = CloseMode::kDrain;
  bool failed_ = false;  // Fail was reported: the ring takes nothing more
  bool ref_ = true;      // ref()/unref(): may a waiting consumer keep the loop alive
  uint32_t credits_ = 0;
  RingStats counters_;  // counters_.backend is unused: Stats() asks the backend
  BackendStats final_backend_stats_;  // the backend's last word, kept after close
  napi_threadsafe_function wake_ = nullptr;
  std::atomic<bool> wake_pending_{false};
  bool wake_finalized_ = false;
  bool wake_ref_ = false;  // wake_ keeps the loop alive (a consumer waits, or a close is under way)
  napi_async_cleanup_hook_handle teardown_hook_ = nullptr;
  Napi::FunctionReference close_callback_;
  Napi::FunctionReference writable_callback_;  // a send waiting for room (strong: the socket stays alive)
};

class RingSocket final : public Napi::ObjectWrap<RingSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingSocket",
                       {
                           InstanceMethod<&RingSocket::Grant>("grant"),
                           InstanceMethod<&RingSocket::Recycling>("recycling"),
                           InstanceMethod<&RingSocket::Stats>("stats"),
                           InstanceMethod<&RingSocket::Address>("address"),
                           InstanceMethod<&RingSocket::Close>("close"),
                           InstanceMethod<&RingSocket::RefLoop>("ref"),
                           InstanceMethod<&RingSocket::UnrefLoop>("unref"),
                           InstanceMethod<&RingSocket::Send>("send"),
                           InstanceMethod<&RingSocket::WaitWritable>("waitWritable"),
                           InstanceAccessor<&RingSocket::Backend>("backend"),
                           InstanceAccessor<&RingSocket::RecvBufferSize>("recvBufferSize"),
                       });
  }

  // new RingSocket(backend, options, onbatch(table, count, payloads),
  //                onerror(errno, syscall), onwarning(errno, syscall))
  explicit RingSocket(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<RingSocket>(info), context_(info.Env(), "DgramRing") {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsString() || !info[1].IsObject() || !info[2].IsFunction() ||
        !info[3].IsFunction() || !info[4].IsFunction()) {
      Napi::TypeError::New(env, "RingSocket(backend, options, onbatch, onerror, onwarning)").ThrowAsJavaScriptException();
      return;
    }
    // Kept as properties, not persistent references, so that an unreferenced
    // socket and the stream its callbacks close over can be collected together.
    Value().Set("onbatch", info[2]);
    Value().Set("onerror", info[3]);
    Value().Set("onwarning", info[4]);
    ring_ = new Ring(env, this);
    if (!ring_->Open(info[0].As<Napi::String>(), ReadOptions(info[1].As<Napi::Object>()))) {
      ring_->Orphan();
      ring_ = nullptr;
    }
  }

  ~RingSocket() override {
    if (ring_ != nullptr) ring_->Orphan();
  }

  // Calls `fn` as an event from the loop (async context, microtasks after).
  // Uses the C API and reports failure instead of throwing: while a worker is
  // being terminated every call that could run JS fails, and node-addon-api
  // would turn that failure into a fatal error. An exception the listener
  // throws becomes an uncaught exception, as for any event listener.
  bool Emit(napi_value fn, size_t argc, const napi_value* argv) {
    napi_env env = Env();
    napi_value self = Value();
    napi_value result;
    if (napi_make_callback(env, context_, self, fn, argc, argv, &result) == napi_ok) return true;
    if (napi_value error = TakePendingException(env)) napi_fatal_exception(env, error);
    return false;
  }
  bool EmitProperty(const char* name, size_t argc, const napi_value* argv) {
    napi_value fn;
    napi_valuetype type;
    if (napi_get_named_property(Env(), Value(), name, &fn) != napi_ok || napi_typeof(Env(), fn, &type) != napi_ok ||
        type != napi_function)
      return false;
    return Emit(fn, argc, argv);
  }

  // The ring is closed and about to be freed: answer `stats` from `last`.
  void Detach(const RingStats& last) {
    ring_ = nullptr;
    final_stats_ = last;
  }

  void Hold(bool strong) {
    if (strong == held_) return;
    held_ = strong;
    if (strong)
      Ref();
    else
      Unref();
  }

 private:
  static Options ReadOptions(Napi::Object o) {
    Options options;
    options.ipv6 = o.Get("ipv6").ToBoolean();
    options.raw = o.Get("raw").ToBoolean();
    options.protocol = o.Get("protocol").ToNumber().Int32Value();
    options.address = o.Get("address").ToString();
    options.port = static_cast<uint16_t>(o.Get("port").ToNumber().Uint32Value());
    options.ring_size = o.Get("ringSize").ToNumber().Uint32Value();
    options.buffer_size = o.Get("bufferSize").ToNumber().Uint32Value();
    options.recv_buffer_size = o.Get("recvBufferSize").ToNumber().Int32Value();
    options.reuse_addr = o.Get("reuseAddr").ToBoolean();
    options.reuse_port = o.Get("reusePort").ToBoolean();
    options.ipv6_only = o.Get("ipv6Only").ToBoolean();
    options.thread = o.Get("thread").ToBoolean();
    options.linger_us = o.Get("lingerMicroseconds").ToNumber().Uint32Value();
    options.coalesce = o.Get("coalesce").ToBoolean();
    options.ttl = o.Get("ttl").ToBoolean();
    options.tos = o.Get("tos").ToBoolean();
    options.timestamp = o.Get("timestamp").ToBoolean();
    Napi::Value joins = o.Get("multicast");
    if (joins.IsArray()) {
      Napi::Array array = joins.As<Napi::Array>();
      for (uint32_t i = 0; i < array.Length(); i++) {
        Napi::Value value = array.Get(i);
        if (!value.IsObject()) continue;
        Napi::Object join = value.As<Napi::Object>();
        MulticastJoin out;
        out.group = join.Get("group").ToString();
        out.source = join.Get("source").ToString();
        out.interface_address = join.Get("interfaceAddress").ToString();
        out.interface_name = join.Get("interfaceName").ToString();
        out.interface_index = join.Get("interfaceIndex").ToNumber().Uint32Value();
        options.multicast.push_back(std::move(out));
      }
    }
    options.spread_over = o.Get("spreadOver").ToNumber().Uint32Value();
    return options;
  }

  bool CheckOpen(Napi::Env env) {
    if (ring_ != nullptr && ring_->IsOpen()) return true;
    CodedError(env, "ERR_DGRAM_RING_CLOSED", "the socket is closed").ThrowAsJavaScriptException();
    return false;
  }

  // grant(credits): lib/socket.ts passes an integer in 0..2^32-1.
  Napi::Value Grant(const Napi::CallbackInfo& info) {
    if (ring_ != nullptr && ring_->IsOpen() && info[0].IsNumber()) ring_->Grant(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  // recycling(): from now on the consumer gives every batch back with recycle().
  Napi::Value Recycling(const Napi::CallbackInfo& info) {
    if (ring_ != nullptr) ring_->Recycling();
    return info.Env().Undefined();
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (ring_ != nullptr) ring_->SetRef(true);
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (ring_ != nullptr) ring_->SetRef(false);
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    RingStats stats = ring_ != nullptr ? ring_->Stats() : final_stats_;
    Napi::Env env = info.Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("received", static_cast<double>(stats.received));
    result.Set("bytes", static_cast<double>(stats.bytes));
    result.Set("truncated", static_cast<double>(stats.truncated));
    result.Set("batches", static_cast<double>(stats.batches));
    result.Set("discarded", static_cast<double>(stats.discarded + stats.backend.discarded));
    result.Set("transientErrors", static_cast<double>(stats.transient_errors));
    result.Set("posted", stats.backend.posted);
    result.Set("peakPosted", stats.backend.peak_posted);
    result.Set("coalesced", static_cast<double>(stats.backend.coalesced));
    if (stats.backend.kernel_drops >= 0) result.Set("kernelDrops", static_cast<double>(stats.backend.kernel_drops));
    return result;
  }

  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::New(env, 16);
    memset(bytes.Data(), 0, 16);
    int family = 4;
    uint16_t port = 0;
    if (SysError error = ring_->LocalAddress(bytes.Data(), &family, &port)) {
      SystemError(env, error).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("family", family);
    result.Set("port", port);
    result.Set("bytes", bytes);
    return result;
  }

  // close(callback, discard): drains (or with `discard`, throws away) what
  // the kernel holds, then calls `callback`. Called again with `discard`
  // while a drain is under way, discards the rest.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ring_ == nullptr || !(ring_->IsOpen() || ring_->IsClosing())) return env.Undefined();
    CloseMode mode = info[1].ToBoolean() ? CloseMode::kDiscard : CloseMode::kDrain;
    ring_->Close(info[0].IsFunction() ? info[0].As<Napi::Function>() : Napi::Function(), mode);
    return env.Undefined();
  }

  // send(table: Uint32Array, payloads: ArrayBufferView, start, count): sends
  // rows [start, start + count) of the table (send.h's layout, which
  // lib/sender.ts writes and checks: every payload range lies inside
  // `payloads`) and returns the rows done; each row's result word says how
  // it went. Throws ERR_DGRAM_RING_CLOSED once closing.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsNumber() ||
        !info[3].IsNumber()) {
      Napi::TypeError::New(env, "send(table, payloads, start, count)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::TypedArray table = info[0].As<Napi::TypedArray>();
    Napi::TypedArray payloads = info[1].As<Napi::TypedArray>();
    SendBatch batch;
    batch.start = info[2].As<Napi::Number>().Uint32Value();
    batch.count = info[3].As<Napi::Number>().Uint32Value();
    size_t rows = table.ElementLength() / kSendStride;
    if (table.TypedArrayType() != napi_uint32_array || payloads.TypedArrayType() != napi_uint8_array ||
        batch.start > rows || batch.count > rows - batch.start) {
      Napi::RangeError::New(env, "send(): table and rows do not match").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    batch.table = reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(table.ArrayBuffer().Data()) + table.ByteOffset());
    batch.payload_bytes = payloads.ByteLength();
    batch.payloads = payload_bytes_or_null(payloads);
    for (uint32_t i = batch.start; i < batch.start + batch.count; i++) {  // never trust a range
      const uint32_t* r = batch.table + static_cast<size_t>(i) * kSendStride;
      if (r[kSendOffset] > batch.payload_bytes || r[kSendLength] > batch.payload_bytes - r[kSendOffset]) {
        Napi::RangeError::New(env, "send(): a payload lies outside the payload buffer").ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    return Napi::Number::New(env, ring_->Send(batch));
  }

  // waitWritable(callback): calls `callback` once the socket may take more.
  // Returns 0, or a negative errno (UV_ENOTSUP on iocp: retry on a timer).
  Napi::Value WaitWritable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(env, "waitWritable(callback)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, ring_->WaitWritable(info[0].As<Napi::Function>()));
  }

  static const uint8_t* payload_bytes_or_null(Napi::TypedArray payloads) {
    if (payloads.ByteLength() == 0) return nullptr;
    return static_cast<const uint8_t*>(payloads.ArrayBuffer().Data()) + payloads.ByteOffset();
  }

  Napi::Value RecvBufferSize(const Napi::CallbackInfo& info) {
    if (ring_ == nullptr || !ring_->IsOpen()) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), ring_->ReceiveBufferSize());
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) {
    if (ring_ != nullptr) return Napi::String::New(info.Env(), ring_->BackendName());
    return backend_name_.empty() ? info.Env().Undefined() : Napi::String::New(info.Env(), backend_name_);
  }

  friend class Ring;
  Ring* ring_ = nullptr;
  std::string backend_name_;
  RingStats final_stats_;
  Napi::AsyncContext context_;
  bool held_ = false;
};

bool Ring::Open(const std::string& backend_name, const Options& options) {
  Napi::Env env(env_);
  napi_value wake_name = Napi::String::New(env, "dgram-ring wake");
  if (napi_create_threadsafe_function(env_, nullptr, nullptr, wake_name, 0, 1, this, OnWakeFinalize, this,
                                      OnWakeCall, &wake_) != napi_ok) {
    wake_ = nullptr;
    CodedError(env, "ERR_DGRAM_RING_INTERNAL", "could not create the wake function").ThrowAsJavaScriptException();
    return false;
  }
  napi_unref_threadsafe_function(env_, wake_);  // an idle socket must not keep the process alive
  std::vector<std::string> names;
  if (backend_name == "auto") {
    for (const std::string& name : BackendNames())
      if (BackendUnavailable(name).empty()) names.push_back(name);
  } else {
    std::string reason = BackendUnavailable(backend_name);
    if (!reason.empty()) {
      CodedError(env, "ERR_DGRAM_RING_BACKEND_UNAVAILABLE", "backend '" + backend_name + "' is not available: " + reason)
          .ThrowAsJavaScriptException();
      return false;
    }
    names.push_back(backend_name);
  }
  uv_loop_s* loop = nullptr;
  napi_get_uv_event_loop(env_, &loop);
  SysError error;
  for (const std::string& name : names) {
    std::unique_ptr<Backend> backend = CreateBackend(name, this, loop);
    if (!backend) {
      std::string known;
      for (const std::string& n : BackendNames()) known += (known.empty() ? "" : ", ") + n;
      CodedError(env, "ERR_DGRAM_RING_BACKEND_UNAVAILABLE",
                 "backend '" + name + "' is not available on this platform (available: " + known + ")")
          .ThrowAsJavaScriptException();
      return false;
    }
    error = backend->Open(options);
    if (!error) {
      backend_ = std::move(backend);
      break;
    }
  }
  if (!backend_) {
    SystemError(env, error).ThrowAsJavaScriptException();
    return false;
  }
  owner_->backend_name_ = backend_->Name();
  // A pooled table holds as many rows as a crossing of a recvmmsg call (or a slab) has, mostly.
  recycler_ = Recycler::Create(env_, std::min<uint32_t>(options.ring_size, 1024));
  napi_add_async_cleanup_hook(env_, OnEnvTeardown, this, &teardown_hook_);
  state_ = State::kOpen;
  return true;
}

void Ring::Deliver(const Completion* items, size_t count, Slab* slab) {
  credits_ = count >= credits_ ? 0 : credits_ - static_cast<uint32_t>(count);
  size_t start = 0;
  while (start < count) {
    size_t bytes = 0;
    size_t end = start + ItemsInCrossing(items + start, count - start, &bytes);
    if (!Cross(items + start, end - start, bytes, slab)) {
      counters_.discarded += count - end;  // the ring failed: the rest cannot reach JS either
      break;
    }
    start = end;
  }
  UpdateHold();
}

// Hands `count` datagrams to JS in one crossing of `bytes` (as
// ItemsInCrossing measured it): onbatch(table, count, payloads). Counts them
// as received once the JS callback was called (an exception it throws becomes
// an uncaught exception: the batch did reach JS), or as discarded if they
// cannot reach JS: the JS object is gone, or an N-API call failed, which fails
// the ring (never leaving an exception pending). Returns false in that last case.
bool Ring::Cross(const Completion* items, size_t count, size_t bytes, Slab* slab) {
  if (owner_ == nullptr) {  // nothing left to deliver to (collected, or teardown)
    counters_.discarded += count;
    return true;
  }
  uint64_t truncated = 0;
  for (size_t i = 0; i < count; i++)
    if (items[i].flags & kTruncated) truncated++;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return CrossingFailed(count, "napi_open_handle_scope");
  napi_value args[3];
  int injected = 0;
  if (Fault(FaultSite::kBuffer, &injected) || !MakeBatchMemory(items, count, bytes, slab, args)) {
    napi_close_handle_scope(env_, scope);
    return CrossingFailed(count, "napi_create_buffer");
  }
  counters_.received += count;
  counters_.bytes += bytes - count * kTableStride * sizeof(uint32_t);
  counters_.truncated += truncated;
  counters_.batches++;
  owner_->EmitProperty("onbatch", 3, args);
  napi_close_handle_scope(env_, scope);
  return true;
}

namespace {

// What a lent ArrayBuffer holds of its slab: a use, given back by Recycle or
// when the ArrayBuffer is collected, whichever comes first, and a pin, until
// it is collected. Loop thread only (both run there).
struct Lease {
  Slab* slab;
  bool used;
};

// The ArrayBuffer was collected: its lease ends.
void EndLease(napi_env /*env*/, void* /*data*/, void* hint) {
  Lease* lease = static_cast<Lease*>(hint);
  if (lease->used) lease->slab->Release();
  lease->slab->Unpin();
  delete lease;
}

}  // namespace

// The batch's memory as onbatch's arguments: args[0] the table (an
// ArrayBuffer), args[1] the count, args[2] the payloads' ArrayBuffer. The
// payloads stay where the kernel wrote them when they lie in a slab and fill
// enough of the range lent (WorthLending: a lent range pins its whole slab:
// sparse payloads, 200 bytes in 64 KiB buffers, are cheaper copied); else they
// are copied after the table, and args[2] is args[0].
bool Ring::MakeBatchMemory(const Completion* items, size_t count, size_t bytes, Slab* slab, napi_value args[3]) {
  size_t table_bytes = count * kTableStride * sizeof(uint32_t);
  size_t payload_bytes = bytes - table_bytes;
  size_t range = 0;
  const uint8_t* lent = slab != nullptr ? PayloadRange(items, count, &range) : nullptr;
  bool worth_lending = lent != nullptr && WorthLending(payload_bytes, range);
  if (worth_lending && recycler_ && recycler_->Lend(items, count, slab, args)) return true;
  Lease* lease = worth_lending ? new (std::nothrow) Lease{slab, true} : nullptr;
  if (lease != nullptr) {
    slab->Retain();
    slab->Pin();
    // Fails where the engine allows no external memory (a V8 sandbox): copy then.
    if (napi_create_external_arraybuffer(env_, const_cast<uint8_t*>(lent), range, EndLease, lease, &args[2]) ==
        napi_ok) {
      bytes = table_bytes;
      // For Recycle: a wrap without a finalizer (EndLease owns the lease).
      if (napi_wrap(env_, args[2], lease, nullptr, nullptr, nullptr) != napi_ok) TakePendingException(env_);
    } else {
      TakePendingException(env_);
      slab->Release();
      slab->Unpin();
      delete lease;
      lent = nullptr;
    }
  } else {
    lent = nullptr;
  }
  // napi_create_buffer (node::Buffer::New) leaves the memory uninitialized;
  // napi_create_arraybuffer zero-fills it first, only for us to overwrite it.
  void* memory = nullptr;
  napi_value buffer;
  if (napi_create_buffer(env_, bytes, &memory, &buffer) != napi_ok ||
      napi_get_typedarray_info(env_, buffer, nullptr, nullptr, nullptr, &args[0], nullptr) != napi_ok ||
      napi_create_uint32(env_, static_cast<uint32_t>(count), &args[1]) != napi_ok)
    return false;
  if (lent != nullptr) {
    WriteTable(items, count, lent, static_cast<uint32_t*>(memory));
  } else {
    WriteBatch(items, count, static_cast<uint8_t*>(memory));
    args[2] = args[0];
  }
  return true;
}

// An N-API call of a crossing failed: its datagrams cannot reach JS.
bool Ring::CrossingFailed(size_t count, const char* call) {
  TakePendingException(env_);
  counters_.discarded += count;
  Fail(SysError{UV_ENOMEM, call});
  return false;
}

void Ring::Fail(SysError error) {
  failed_ = true;
  credits_ = 0;  // a failed ring takes nothing more: nothing posted, and not waiting
  UpdateHold();
  Report("onerror", error);
}

void Ring::Warn(SysError error) {
  counters_.transient_errors++;
  Report("onwarning", error);
}

// Calls the JS object's `listener` property with (errno, syscall).
void Ring::Report(const char* listener, SysError error) {
  if (owner_ == nullptr) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return (void)TakePendingException(env_);
  napi_value args[2];
  if (napi_create_int32(env_, error.code, &args[0]) == napi_ok &&
      napi_create_string_utf8(env_, error.syscall, NAPI_AUTO_LENGTH, &args[1]) == napi_ok)
    owner_->EmitProperty(listener, 2, args);
  else
    TakePendingException(env_);
  napi_close_handle_scope(env_, scope);
}

void Ring::Grant(uint32_t credits) {
  if (failed_) return;  // a failed ring is not waiting: granting must not keep the process alive
  credits_ = credits;
  backend_->OnCredits();
  UpdateHold();
}

void Ring::SetRef(bool keep_alive) {
  ref_ = keep_alive;
  if (state_ != State::kClosed) backend_->SetRef(keep_alive);
  UpdateHold();
}

void Ring::UpdateHold() {
  bool waiting = state_ == State::kOpen && credits_ > 0;
  bool closing = state_ == State::kClosing;
  // The JS object: while a consumer waits (it will be called), and while
  // closing (its close callback must run, and a drain delivers to it).
  if (owner_ != nullptr) owner_->Hold(waiting || closing);
  // The loop: a consumer waiting for datagrams keeps it alive, as a
  // node:dgram socket does, unless unref()'d; a close under way always does,
  // so that `await close()` at the end of a program completes. (The
  // backends' own handles do so too, as SetRef says.)
  bool keep_alive = (waiting && ref_) || closing;
  if (wake_ != nullptr && !wake_finalized_ && keep_alive != wake_ref_) {
    wake_ref_ = keep_alive;
    if (keep_alive)
      napi_ref_threadsafe_function(env_, wake_);
    else
      napi_unref_threadsafe_function(env_, wake_);
  }
}

RingStats Ring::Stats() const {
  RingStats stats = counters_;
  stats.backend = state_ == State::kClosed ? final_backend_stats_ : backend_->Stats();
  return stats;
}

void Ring::Close(Napi::Function callback, CloseMode mode) {
  if (state_ == State::kClosing) {
    // destroy() after close(), or teardown during a drain: discard the rest.
    if (mode == CloseMode::kDiscard && close_mode_ == CloseMode::kDrain) {
      close_mode_ = CloseMode::kDiscard;
      backend_->Close(CloseMode::kDiscard, [this] { Closed(); });
    }
    return;
  }
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  close_mode_ = mode;
  credits_ = 0;
  if (!callback.IsEmpty()) close_callback_ = Napi::Persistent(callback);
  UpdateHold();
  writable_callback_.Reset();  // the backend forgets the waiter: JS rejects what waited
  backend_->Close(mode, [this] { Closed(); });
}

int Ring::WaitWritable(Napi::Function callback) {
  writable_callback_ = Napi::Persistent(callback);
  int rc = backend_->WaitWritable([this] {
    if (writable_callback_.IsEmpty()) return;
    Napi::FunctionReference callback = std::move(writable_callback_);
    writable_callback_.Reset();
    if (owner_ == nullptr) return;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return (void)TakePendingException(env_);
    owner_->Emit(callback.Value(), 0, nullptr);
    napi_close_handle_scope(env_, scope);
  });
  if (rc != 0) writable_callback_.Reset();
  return rc;
}

void Ring::Orphan() {
  owner_ = nullptr;
  if (state_ == State::kOpen) {
    Close(Napi::Function(), CloseMode::kDiscard);
  } else if (state_ == State::kClosed) {
    // Never opened (a failed Open), or already closed and its wake function
    // released: whatever is still pending frees it.
    if (backend_ == nullptr && wake_ != nullptr && !wake_finalized_) {
      napi_release_threadsafe_function(wake_, napi_tsfn_release);
    } else {
      MaybeDelete();
    }
  }
  // kClosing: the object is held until Closed, so only teardown gets here
  // (after OnEnvTeardown forgot it); Closed finishes.
}

void Ring::Closed() {
  state_ = State::kClosed;
  if (recycler_) recycler_->Close();
  final_backend_stats_ = backend_->Stats();
  if (teardown_hook_ != nullptr) {
    napi_remove_async_cleanup_hook(teardown_hook_);
    teardown_hook_ = nullptr;
  }
  if (owner_ != nullptr) {
    RingSocket* owner = owner_;
    owner->Detach(Stats());
    napi_handle_scope scope;
    if (!close_callback_.IsEmpty() && napi_open_handle_scope(env_, &scope) == napi_ok) {
      owner->Emit(close_callback_.Value(), 0, nullptr);
      napi_close_handle_scope(env_, scope);
    }
    owner->Hold(false);
  }
  close_callback_.Reset();
  writable_callback_.Reset();
  owner_ = nullptr;
  if (wake_ != nullptr && !wake_finalized_) {
    napi_release_threadsafe_function(wake_, napi_tsfn_release);  // finalizes, then MaybeDelete
  } else {
    MaybeDelete();
  }
}

void Ring::OnWakeCall(napi_env env, napi_value /*js_callback*/, void* context, void* /*data*/) {
  // env == NULL: Node is emptying the queue of a wake function that is being
  // finalized, after OnWakeFinalize may already have deleted the Ring.
  if (env == nullptr) return;
  auto* ring = static_cast<Ring*>(context);
  ring->wake_pending_ = false;
  if (ring->state_ != State::kClosed) ring->backend_->OnWake();
}

void Ring::OnWakeFinalize(napi_env /*env*/, void* data, void* /*hint*/) {
  auto* ring = static_cast<Ring*>(data);
  ring->wake_finalized_ = true;
  ring->MaybeDelete();
}

void Ring::OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* ring = static_cast<Ring*>(arg);
  // No JS may run now: forget the JS object, close (discarding, also a drain
  // under way), and let Closed() remove this hook, which tells Node the
  // teardown may go on.
  ring->teardown_hook_ = handle;
  if (ring->owner_ != nullptr) ring->owner_->Detach(ring->Stats());
  ring->owner_ = nullptr;
  ring->close_callback_.Reset();
  ring->Close(Napi::Function(), CloseMode::kDiscard);
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("RingSocket", RingSocket::Define(env));
  Napi::Array names = Napi::Array::New(env);
  for (const std::string& name : BackendNames())
    if (BackendUnavailable(name).empty()) names.Set(names.Length(), name);
  exports.Set("backends", names);
  // recycle(table, payloads): a batch's lent memory may be received into
  // again now (batches({recycle: true}) calls it as the consumer moves on).
  // Its views stay valid memory; their bytes may change. A pooled table goes
  // back to its pool (recycle.h); a batch lent otherwise gives its use of the
  // slab back. Not lent (copied): nothing to do. Loop thread.
  exports.Set("recycle", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                napi_env env = info.Env();
                if (info.Length() < 2 || !info[0].IsArrayBuffer() || !info[1].IsArrayBuffer()) return info.Env().Undefined();
                if (Recycler::Recycle(env, info[0])) return info.Env().Undefined();
                void* lease = nullptr;
                if (napi_unwrap(env, info[1], &lease) == napi_ok && lease != nullptr) {
                  Lease* held = static_cast<Lease*>(lease);
                  if (held->used) {
                    held->used = false;
                    held->slab->Release();
                  }
                } else {
                  TakePendingException(env);
                }
                return info.Env().Undefined();
              }));
  exports.Set("backendUnavailable", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                std::string reason = info[0].IsString() ? BackendUnavailable(info[0].As<Napi::String>()) : "";
                return reason.empty() ? info.Env().Undefined() : Napi::String::New(info.Env(), reason);
              }));
#ifdef DGRAM_RING_FAULTS
  exports.Set("faultInjection", true);  // native/faults.h: test/faults.test.mjs runs
#endif
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("stride", static_cast<uint32_t>(kTableStride));
  layout.Set("offset", static_cast<uint32_t>(kWordOffset));
  layout.Set("length", static_cast<uint32_t>(kWordLength));
  layout.Set("flags", static_cast<uint32_t>(kWordFlags));
  layout.Set("remotePort", static_cast<uint32_t>(kWordRemotePort));
  layout.Set("interfaceIndex", static_cast<uint32_t>(kWordInterfaceIndex));
  layout.Set("remoteAddress", static_cast<uint32_t>(kWordRemoteAddress));
  layout.Set("localAddress", static_cast<uint32_t>(kWordLocalAddress));
  layout.Set("ttlTos", static_cast<uint32_t>(kWordTtlTos));
  layout.Set("timestampLow", static_cast<uint32_t>(kWordTimestampLow));
  layout.Set("timestampHigh", static_cast<uint32_t>(kWordTimestampHigh));
  exports.Set("table", layout);
  Napi::Object flags = Napi::Object::New(env);
  flags.Set("truncated", static_cast<uint32_t>(kTruncated));
  flags.Set("controlTruncated", static_cast<uint32_t>(kControlTruncated));
  flags.Set("broadcast", static_cast<uint32_t>(kBroadcast));
  flags.Set("multicast", static_cast<uint32_t>(kMulticast));
  flags.Set("remoteIPv6", static_cast<uint32_t>(kRemoteIPv6));
  flags.Set("hasLocal", static_cast<uint32_t>(kHasLocal));
  flags.Set("localIPv6", static_cast<uint32_t>(kLocalIPv6));
  flags.Set("hasBroadcastInfo", static_cast<uint32_t>(kHasBroadcastInfo));
  flags.Set("hasTtl", static_cast<uint32_t>(kHasTtl));
  flags.Set("hasTos", static_cast<uint32_t>(kHasTos));
  flags.Set("hasTimestamp", static_cast<uint32_t>(kHasTimestamp));
  exports.Set("flags", flags);
  return exports;
}

std::vector<std::string> BackendNames() {
#ifdef _WIN32
  return {"iocp"};
#elif defined(__linux__)
  return {"recvmmsg", "io_uring"};
#else
  return {"recvmsg"};
#endif
}

std::unique_ptr<Backend> CreateBackend(const std::string& name, Sink* sink, uv_loop_s* loop) {
#ifdef DGRAM_RING_FAULTS
  if (name == "sync-close") return NewSyncCloseBackend(sink);
#endif
#ifdef _WIN32
  if (name == "iocp") return NewIocpBackend(sink, loop);
#else
#ifdef __linux__
  if (name == "io_uring") return NewUringBackend(sink, loop);
#endif
  if (name == BackendNames().front()) return NewMmsgBackend(sink, loop);
#endif
  return nullptr;
}

std::string BackendUnavailable(const std::string& name) {
#ifdef __linux__
  if (name == "io_uring") return UringUnavailable();
#endif
  return "";
}

}  // namespace dgram_ring

static Napi::Object InitDgramRing(Napi::Env env, Napi::Object exports) {
  return dgram_ring::Init(env, exports);
}

NODE_API_MODULE(dgram_ring, InitDgramRing)
