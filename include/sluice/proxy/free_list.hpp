#pragma once
// A bounded intrusive free list (T has a `T* next`), for the per-loop pools of chunks and writes.

#include <cstddef>
#include <utility>

namespace sluice {

template <class T>
class FreeList {
 public:
  explicit FreeList(std::size_t max_free) : max_free_(max_free) {}
  ~FreeList() {
    while (free_ != nullptr) delete std::exchange(free_, free_->next);
  }
  FreeList(const FreeList&) = delete;
  FreeList& operator=(const FreeList&) = delete;

  /// A kept item, or nullptr when none is.
  T* pop() {
    if (free_ == nullptr) return nullptr;
    T* item = std::exchange(free_, free_->next);
    item->next = nullptr;
    --count_;
    return item;
  }

  /// Keeps `item` for reuse, or frees it when `max_free` are kept already.
  void push(T* item) {
    if (count_ >= max_free_) {
      delete item;
      return;
    }
    item->next = free_;
    free_ = item;
    ++count_;
  }

 private:
  T* free_ = nullptr;
  std::size_t count_ = 0;
  std::size_t max_free_;
};

}  // namespace sluice
