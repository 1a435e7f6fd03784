// Batch memory a recycling consumer (batches({recycle: true})) gives back,
// reused from batch to batch instead of made anew: a table ArrayBuffer from a
// pool, and one ArrayBuffer a slab that every batch received into that slab
// views. Measured side by side (512-byte datagrams, 300k/s): making an
// external ArrayBuffer and a table Buffer for every batch cost 6-9 % of the
// CPU a datagram, most of it in the young-generation GCs that the external
// bytes of those short-lived ArrayBuffers set off.
//
// A lent table carries the batch's use of its slab (a TableLease, wrapped on
// the table's ArrayBuffer): recycle() gives the use back and the table to the
// pool, once; if the table is collected instead, its finalizer gives the use
// back. A slab's ArrayBuffer pins the slab (slab.h) until it is collected,
// so a view never sees freed memory; its bytes change once the slab is
// received into again, and a batch's fields are read from its table, which
// JS forbids reading after recycle() (lib/datagram.ts).
//
// Threads: everything here runs on the loop thread of the environment that
// made the ring (crossings, recycle() and finalizers alike).
// Ownership: the Ring holds its Recycler (shared); so does every table lent
// out, so recycle() after the ring is gone finds a closed Recycler, never a
// freed one. Close() lets go of every idle table and every slab ArrayBuffer:
// they are collected like any other JS object from then on.
#ifndef DGRAM_RING_RECYCLE_H_
#define DGRAM_RING_RECYCLE_H_

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ring.h"
#include "slab.h"

namespace dgram_ring {

class Recycler : public std::enable_shared_from_this<Recycler> {
 public:
  // Tables of `rows` rows (the most a pooled crossing holds).
  static std::shared_ptr<Recycler> Create(napi_env env, uint32_t rows);
  // The ring's consumer recycles from now on: crossings lend through here.
  void Enable() { enabled_ = !closed_; }

  // Makes a crossing's memory from the slab its `count` items lie in:
  // args[0] a pooled table (rows written, offsets from the slab's start),
  // args[2] the slab's ArrayBuffer; holds one use of the slab for the batch.
  // False (nothing made, nothing held) where it cannot: too many items, or an
  // N-API call failed; the caller then makes the memory as for any consumer.
  bool Lend(const Completion* items, size_t count, Slab* slab, napi_value args[3]);

  // Lets go of every idle table and slab ArrayBuffer; lends nothing more.
  void Close();

  // recycle(table, payloads): the batch whose table this is gives its memory
  // back. False if `table` is no lent table (the batch was made otherwise).
  static bool Recycle(napi_env env, napi_value table);

 private:
  struct Table;
  struct View {
    Slab* slab;
    napi_ref ref;  // strong, while the entry is in views_
    uint64_t used_at;
  };

  Recycler(napi_env env, uint32_t rows) : env_(env), rows_(rows) {}
  Table* TakeTable();
  void GiveBack(Table* table);
  napi_value ViewOf(Slab* slab);
  void Evict(size_t index);
  static void EndTable(napi_env env, void* data, void* hint);
  static void EndView(napi_env env, void* data, void* hint);

  napi_env env_;
  const uint32_t rows_;
  bool enabled_ = false;
  bool closed_ = false;
  std::vector<Table*> idle_;  // strong references, ready to lend
  std::vector<View> views_;   // the slabs batches were lent from lately
  size_t view_bytes_ = 0;     // what views_ keeps pinned
  uint64_t clock_ = 0;
};

}  // namespace dgram_ring

#endif  // DGRAM_RING_RECYCLE_H_
