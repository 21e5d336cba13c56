#include "kiln/nn/train/batch_source.h"

namespace kiln::nn {

data::Batch DataLoaderSource::next() {
  // Advance past the batch handed out last; at the end of an epoch (or on the first call)
  // start the loader's next iteration, which begins at the loader's own position.
  if (iterator_) ++*iterator_;
  if (!iterator_ || *iterator_ == std::default_sentinel) {
    iterator_.reset();  // end the old iteration before begin() starts a new one
    iterator_.emplace(loader_.begin());
    KILN_CHECK(*iterator_ != std::default_sentinel, "DataLoaderSource: the DataLoader has no batches (dataset size ",
               loader_.dataset().size(), ", batch_size ", loader_.options().batch_size,
               loader_.options().drop_last ? ", drop_last" : "", ")");
  }
  return **iterator_;
}

int64_t DataLoaderSource::position() const {
  const data::DataLoaderState state = loader_.state();
  return state.epoch * loader_.size() + state.batch;
}

void DataLoaderSource::set_position(int64_t position) {
  KILN_CHECK(position >= 0, "DataLoaderSource: position must be >= 0, got ", position);
  const int64_t batches = loader_.size();
  KILN_CHECK(batches > 0 || position == 0, "DataLoaderSource: cannot resume at batch ", position,
             ": the DataLoader has no batches");
  iterator_.reset();
  loader_.load_state(batches > 0 ? data::DataLoaderState{position / batches, position % batches}
                                 : data::DataLoaderState{});
}

}  // namespace kiln::nn
