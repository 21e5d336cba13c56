// Where charlm's characters come from: a file the user names (enwik8, text8 or any text;
// bytes are the tokens, split 90% / 5% / 5% by nn::data::ByteCorpus), or, with no file,
// the license texts every Debian/Ubuntu system ships in /usr/share/common-licenses.
#pragma once

#include <string>

#include <kiln/nn/data/corpus.h>

namespace charlm {

inline constexpr const char* kDefaultCorpusDir = "/usr/share/common-licenses";

// `path` empty: the default corpus; otherwise the file at `path`. Throws kiln::Error
// with a message that says what to do when the file (or the default corpus) is missing.
kiln::nn::data::ByteCorpus load_corpus(const std::string& path);

// The default corpus from `dir`: its regular files, symlinks followed and each file read
// once (GPL -> GPL-3 and GPL-3 are one text), in name order so every machine builds the
// same byte sequence.
kiln::nn::data::ByteCorpus load_text_directory(const std::string& dir);

}  // namespace charlm
