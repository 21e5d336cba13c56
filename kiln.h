// kiln: one include for the whole library.  #include <kiln/kiln.h>
#pragma once

#include "kiln/core/device.h"
#include "kiln/core/dtype.h"
#include "kiln/core/error.h"
#include "kiln/core/factory.h"
#include "kiln/core/random.h"
#include "kiln/core/shape.h"
#include "kiln/core/tensor.h"

#include "kiln/autograd/dot.h"
#include "kiln/autograd/engine.h"
#include "kiln/autograd/gradcheck.h"
#include "kiln/autograd/grad_mode.h"

#include "kiln/ops/activation.h"
#include "kiln/ops/dropout.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/index.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/loss.h"
#include "kiln/ops/normalization.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/shape.h"
