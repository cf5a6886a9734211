"""Mini-batches on the model's device: the epoch's seeded permutation, gathered batch by batch
where the data fits the device, or a chunk of many batches at a time into a page-locked buffer
where it does not (``fit`` then streams it from the host). The batches and their order are the
same either way; the last partial batch is trained on."""
from __future__ import annotations

from ..backend import get_backend


class BatchGathering:
    """What :class:`~tensornet.training.trainer.Trainer` uses to make batches: ``self.model``,
    ``self._streamed`` (the data is on the host) and ``self._buffers`` (reused work buffers)."""

    def _draw_order(self, n):
        """The epoch's permutation, drawn from the model's generator (on the host when the data
        is streamed, so the order does not depend on where the data lives)."""
        source = get_backend("numpy") if self._streamed else self.model.ops
        return source.permutation(self.model.rng, n)

    def _order_on(self, order):
        """A saved (host) order on the backend that :meth:`_draw_order` would have used."""
        return order if self._streamed else self.model.ops.asarray(order)

    def _batches(self, x, y, batch_size, order, first_batch=0):
        """(x, y) batches on the model's device from batch ``first_batch`` on, in ``order``
        (a permutation of the rows, or None for their stored order).

        Data resident on the device is gathered batch by batch there. Data too large for it
        (kept on the host, see ``_data_ops``) is gathered on the host a chunk of many batches
        at a time into a page-locked buffer and copied over once per chunk; the batches and
        their order are the same either way.
        """
        ops = self.model.ops
        n = x.shape[0]
        begin = first_batch * batch_size
        if not self._streamed:
            if order is None:
                for start in range(begin, n, batch_size):
                    yield x[start:start + batch_size], y[start:start + batch_size]
                return
            buffers = None  # the full batches' two buffers, looked up once an epoch
            for start in range(begin, n, batch_size):
                stop = min(start + batch_size, n)
                rows = stop - start
                if rows == batch_size:
                    if buffers is None:
                        buffers = self._buffer("x", (rows,) + x.shape[1:], x.dtype), \
                            self._buffer("y", (rows,) + y.shape[1:], y.dtype)
                    bx, by = buffers
                else:
                    bx = self._buffer("x", (rows,) + x.shape[1:], x.dtype)
                    by = self._buffer("y", (rows,) + y.shape[1:], y.dtype)
                index = order[start:stop]
                yield ops.take_rows(x, index, out=bx), ops.take_rows(y, index, out=by)
            return
        source = get_backend("numpy")
        chunk_rows = self._chunk_rows(x, y, batch_size)
        for chunk_start in range(begin, n, chunk_rows):
            chunk_stop = min(chunk_start + chunk_rows, n)
            rows = chunk_stop - chunk_start
            chunk = []
            for tag, array in (("x", x), ("y", y)):
                shape = (rows,) + array.shape[1:]
                if order is None:
                    host = array[chunk_start:chunk_stop]
                else:
                    host = source.take_rows(array, order[chunk_start:chunk_stop],
                                            out=self._host_buffer(tag, shape, array.dtype))
                chunk.append(ops.to_device(host, out=self._buffer("chunk_" + tag, shape, array.dtype)))
            for start in range(0, rows, batch_size):
                yield chunk[0][start:start + batch_size], chunk[1][start:start + batch_size]

    def batch_at(self, batch):
        """Batch ``batch`` of the current epoch, gathered afresh (what :meth:`_batches` yields
        for it; used to replay steps)."""
        position = self.position
        x, y, size = position.x, position.y, position.batch_size
        start, stop = batch * size, min((batch + 1) * size, x.shape[0])
        if position.order is None:
            rows = [x[start:stop], y[start:stop]]
        else:
            index = position.order[start:stop]
            source = get_backend("numpy") if self._streamed else self.model.ops
            rows = [source.take_rows(x, index), source.take_rows(y, index)]
        return tuple(self._on_device(array) for array in rows)

    def _chunk_rows(self, x, y, batch_size):
        """Rows per streamed chunk: a whole number of batches filling about a quarter of the
        device budget (two arrays of that size stay allocated)."""
        row_bytes = (x.size // max(x.shape[0], 1)) * x.itemsize + (y.size // max(y.shape[0], 1)) * y.itemsize
        budget = self.model.ops.memory_budget() or row_bytes * x.shape[0]
        return max(batch_size, (budget // 4 // max(row_bytes, 1)) // batch_size * batch_size)

    def _data_ops(self, x):
        """The backend the training arrays are prepared on: the model's, or the host (NumPy)
        when they (every input of a model with several) would take more than the device's
        ``memory_budget()`` (then ``fit`` streams them in chunks)."""
        ops, host = self.model.ops, get_backend("numpy")
        budget = ops.memory_budget()
        arrays = list(x.values()) if isinstance(x, dict) else list(x) if isinstance(x, (list, tuple)) else [x]
        already_on_device = any(ops.is_array(a) and not host.is_array(a) for a in arrays)
        if budget is None or already_on_device or not all(hasattr(a, "size") for a in arrays):
            return ops
        needed = sum(int(a.size) for a in arrays) * ops.dtype(self.model.dtype).itemsize
        return host if needed > budget else ops

    def _on_device(self, array):
        """``array`` on the model's backend (a copy only when it is held on the host)."""
        ops = self.model.ops
        return array if ops.is_array(array) else ops.to_device(array)

    def _host_buffer(self, tag, shape, dtype):
        key = ("host_" + tag, tuple(shape), str(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.model.ops.host_buffer(shape, dtype)
        else:
            # The buffer is about to be refilled, but the last ``to_device`` from it may still be
            # queued: CuPy's ``ndarray.set`` copies asynchronously on the current stream, and from
            # page-locked memory it returns before the copy has run. Wait for it (once per chunk,
            # never per step; a no-op on the CPU).
            self.model.ops.synchronize()
        return buffer

    def _buffer(self, tag, shape, dtype):
        key = (tag, tuple(shape), str(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.model.ops.empty(shape, dtype)
        return buffer
