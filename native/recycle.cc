#include "recycle.h"

#include <new>

#include "batch.h"
#include "pending_exception.h"

namespace dgram_ring {

namespace {

// How many idle tables a ring keeps: a recycling consumer holds one batch and
// its queue a few more; a table is a few KiB to 64 KiB.
constexpr size_t kIdleTables = 16;
// How much slab memory the slab ArrayBuffers kept here may pin beyond their
// slabs' use: as much as a slab pool keeps idle (slab.h), and at least two.
constexpr size_t kViewBytes = SlabCutter::kIdleSlabBytes;

}  // namespace

struct Recycler::Table {
  std::shared_ptr<Recycler> owner;
  napi_ref ref;       // strong while idle in the pool, weak while lent
  uint32_t* rows;     // the ArrayBuffer's memory
  Slab* slab;         // while lent: the batch's use of its slab
};

std::shared_ptr<Recycler> Recycler::Create(napi_env env, uint32_t rows) {
  return std::shared_ptr<Recycler>(new (std::nothrow) Recycler(env, rows));
}

bool Recycler::Lend(const Completion* items, size_t count, Slab* slab, napi_value args[3]) {
  if (!enabled_ || count > rows_) return false;
  napi_value view = ViewOf(slab);
  if (view == nullptr) return false;
  Table* table = TakeTable();
  if (table == nullptr) return false;
  napi_value buffer = nullptr;
  if (napi_get_reference_value(env_, table->ref, &buffer) != napi_ok || buffer == nullptr ||
      napi_create_uint32(env_, static_cast<uint32_t>(count), &args[1]) != napi_ok) {
    TakePendingException(env_);
    idle_.push_back(table);  // still strong, as it was in the pool (GiveBack would take a second reference)
    return false;
  }
  uint32_t refs = 0;
  napi_reference_unref(env_, table->ref, &refs);  // weak while lent: collected if never given back
  slab->Retain();
  table->slab = slab;
  WriteTable(items, count, slab->data(), table->rows);
  args[0] = buffer;
  args[2] = view;
  return true;
}

// An idle table, or a new one (its ArrayBuffer wrapped, for Recycle and EndTable).
Recycler::Table* Recycler::TakeTable() {
  if (!idle_.empty()) {
    Table* table = idle_.back();
    idle_.pop_back();
    return table;
  }
  auto* table = new (std::nothrow) Table{shared_from_this(), nullptr, nullptr, nullptr};
  if (table == nullptr) return nullptr;
  void* memory = nullptr;
  napi_value buffer;
  if (napi_create_arraybuffer(env_, size_t{rows_} * kTableStride * sizeof(uint32_t), &memory, &buffer) != napi_ok ||
      napi_create_reference(env_, buffer, 1, &table->ref) != napi_ok) {
    TakePendingException(env_);
    delete table;
    return nullptr;
  }
  if (napi_wrap(env_, buffer, table, EndTable, nullptr, nullptr) != napi_ok) {
    TakePendingException(env_);
    napi_delete_reference(env_, table->ref);
    delete table;
    return nullptr;
  }
  table->rows = static_cast<uint32_t*>(memory);
  return table;
}

// Back to the pool (strong again), or, with the pool full or closed, left
// weak for the collector (EndTable frees it then).
void Recycler::GiveBack(Table* table) {
  if (closed_ || idle_.size() >= kIdleTables) return;
  uint32_t refs = 0;
  if (napi_reference_ref(env_, table->ref, &refs) != napi_ok) {
    TakePendingException(env_);
    return;
  }
  idle_.push_back(table);
}

bool Recycler::Recycle(napi_env env, napi_value buffer) {
  void* data = nullptr;
  if (napi_unwrap(env, buffer, &data) != napi_ok || data == nullptr) {
    TakePendingException(env);
    return false;
  }
  auto* table = static_cast<Table*>(data);
  if (table->slab == nullptr) return true;  // given back already (or idle)
  table->slab->Release();
  table->slab = nullptr;
  table->owner->GiveBack(table);
  return true;
}

// The table's ArrayBuffer was collected: a batch never given back gives its
// use back now.
void Recycler::EndTable(napi_env env, void* data, void* /*hint*/) {
  auto* table = static_cast<Table*>(data);
  if (table->slab != nullptr) table->slab->Release();
  napi_delete_reference(env, table->ref);
  delete table;
}

// The slab's one ArrayBuffer: the one kept here, or a new one (pinning the slab).
napi_value Recycler::ViewOf(Slab* slab) {
  for (View& view : views_) {
    if (view.slab != slab) continue;
    napi_value value = nullptr;
    if (napi_get_reference_value(env_, view.ref, &value) != napi_ok) TakePendingException(env_);
    view.used_at = ++clock_;
    return value;
  }
  napi_value value;
  slab->Pin();
  // Fails where the engine allows no external memory (a V8 sandbox).
  if (napi_create_external_arraybuffer(env_, slab->data(), slab->size(), EndView, slab, &value) != napi_ok) {
    TakePendingException(env_);
    slab->Unpin();
    return nullptr;
  }
  napi_ref ref;
  if (napi_create_reference(env_, value, 1, &ref) != napi_ok) {
    TakePendingException(env_);
    return value;  // this batch views it all the same; EndView unpins once it is collected
  }
  views_.push_back(View{slab, ref, ++clock_});
  view_bytes_ += slab->size();
  // The least lately used go first; a batch that still views one keeps it alive.
  while (views_.size() > 2 && view_bytes_ > kViewBytes) {
    size_t oldest = 0;
    for (size_t i = 1; i < views_.size(); i++)
      if (views_[i].used_at < views_[oldest].used_at) oldest = i;
    Evict(oldest);
  }
  return value;
}

void Recycler::Evict(size_t index) {
  View view = views_[index];
  views_[index] = views_.back();
  views_.pop_back();
  view_bytes_ -= view.slab->size();
  napi_delete_reference(env_, view.ref);
}

// A slab's ArrayBuffer was collected: the slab may be freed now.
void Recycler::EndView(napi_env /*env*/, void* /*data*/, void* hint) { static_cast<Slab*>(hint)->Unpin(); }

void Recycler::Close() {
  closed_ = true;
  enabled_ = false;
  uint32_t refs = 0;
  for (Table* table : idle_) napi_reference_unref(env_, table->ref, &refs);
  idle_.clear();
  while (!views_.empty()) Evict(views_.size() - 1);
}

}  // namespace dgram_ring
