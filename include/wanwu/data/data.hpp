// The data pipeline in one include, in the order data flows: decoding, the pixel operations and
// the random transforms built on them, datasets, samplers, collation and the threaded loader.
// Include it after <wanwu/wanwu.hpp>. Programs that use it link zlib (the IDX reader); stb_image
// is compiled in from its header (Debian: libstb-dev, zlib1g-dev).
#pragma once

#include "../wanwu.hpp"

#include "image.hpp"
#include "decode.hpp"
#include "random.hpp"
#include "resample.hpp"
#include "image_ops.hpp"
#include "transforms.hpp"
#include "datasets.hpp"
#include "samplers.hpp"
#include "collate.hpp"
#include "loader.hpp"
