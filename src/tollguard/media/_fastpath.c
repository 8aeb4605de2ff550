/*
 * The embedded relay's packet path in C: the steady state of every relayed stream.
 *
 * The engine (tollguard/media/rtp.py) keeps every decision: which sockets belong to a
 * call, where each side's media is expected from, the NAT latch, SRTP, the media
 * timeout. This module only moves the packets of ports whose source is already locked,
 * on streams without SRTP: per packet one recvfrom, the same checks and counters as the
 * engine's Python path (RTP version 2, the sequence-number loss count, the per-call
 * counters in shared memory) and one sendto. A packet from a stranger to a locked port
 * is dropped and counted here, as the engine would. Every other packet (a source not
 * locked yet, an SRTP stream) is handed back to the engine as (fd, data, source), which
 * decides on it exactly as before.
 *
 * No SIP, no policy, no allocation per packet: written in C because the relay's cost
 * per packet in Python was most of the relay's cost (docs/media.md, BENCHMARKS.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_EVENTS 256
#define PACKET_MAX 2048
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
/* Offsets in a session's counters (tollguard.media.rtp.SLOT_FIELDS). */
#define SLOT_SIZE 8
#define DROPPED 6

typedef union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} address;

typedef struct {
    int active;
    int other;    /* the fd of the same stream's socket on the other side */
    int rtp;      /* RTP (1) or RTCP (0) */
    int slow;     /* every packet of this port, and every packet to it, goes to Python */
    int has_locked;
    int has_dest;
    int seq;      /* the last sequence number, -1 before the first */
    Py_ssize_t counter; /* index of this direction's packets counter */
    Py_ssize_t base;    /* index of the session's first counter */
    Py_ssize_t slot;
    address locked;     /* the only source accepted here */
    address dest;       /* where packets for this side go */
    socklen_t dest_len;
} port_t;

typedef struct {
    PyObject_HEAD
    Py_buffer counters;
    int has_counters;
    Py_ssize_t n_counters;
    double *last_rx; /* per slot: the clock when its last RTP packet was counted */
    Py_ssize_t slots;
    PyObject *clock;
    port_t *ports;
    int n_ports;
} Forwarder;

static int same_address(const address *a, const struct sockaddr *b)
{
    if (a->sa.sa_family != b->sa_family)
        return 0;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)b;
        return a->in4.sin_port == x->sin_port && a->in4.sin_addr.s_addr == x->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)b;
        return a->in6.sin6_port == x->sin6_port && a->in6.sin6_scope_id == x->sin6_scope_id &&
               memcmp(&a->in6.sin6_addr, &x->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

/* A Python socket address (host, port[, flowinfo, scope_id]) with a numeric host. */
static int parse_address(PyObject *value, address *out, socklen_t *len)
{
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) < 2) {
        PyErr_SetString(PyExc_ValueError, "an address is a (host, port) tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(value, "si|II", &host, &port, &flowinfo, &scope_id))
        return -1;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, &out->in4.sin_addr) == 1) {
        out->in4.sin_family = AF_INET;
        out->in4.sin_port = htons((uint16_t)port);
        *len = sizeof out->in4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) == 1) {
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = htons((uint16_t)port);
        out->in6.sin6_flowinfo = htonl(flowinfo);
        out->in6.sin6_scope_id = scope_id;
        *len = sizeof out->in6;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
    return -1;
}

static PyObject *address_tuple(const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &x->sin6_addr, host, sizeof host);
        return Py_BuildValue("(siII)", host, ntohs(x->sin6_port), ntohl(x->sin6_flowinfo),
                             x->sin6_scope_id);
    }
    const struct sockaddr_in *x = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &x->sin_addr, host, sizeof host);
    return Py_BuildValue("(si)", host, ntohs(x->sin_port));
}

static port_t *lookup(Forwarder *self, int fd)
{
    if (fd < 0 || fd >= self->n_ports || !self->ports[fd].active)
        return NULL;
    return &self->ports[fd];
}

static port_t *lookup_or_raise(Forwarder *self, int fd)
{
    port_t *port = lookup(self, fd);
    if (port == NULL)
        PyErr_Format(PyExc_KeyError, "no port on fd %d", fd);
    return port;
}

/* RFC 3550 A.1, simplified, as the engine's _Port.sequence_jump. */
static void sequence_jump(port_t *port, int seq, int64_t *counters)
{
    int last = port->seq;
    port->seq = seq;
    if (last < 0)
        return;
    int delta = (seq - last) & 0xFFFF;
    int64_t *lost = &counters[port->counter + 2];
    if (delta == 0) {
        port->seq = last;
    } else if (delta < MAX_DROPOUT) {
        *lost += delta - 1;
    } else if (delta > 0x10000 - MAX_MISORDER) {
        port->seq = last;
        if (*lost > 0)
            *lost -= 1;
    }
}

/* The rest of the path for a packet from the port's locked source. */
static void forward(Forwarder *self, port_t *port, const unsigned char *data, Py_ssize_t size,
                    double now)
{
    int64_t *counters = (int64_t *)self->counters.buf;
    if (port->rtp) {
        if (size < 12 || (data[0] & 0xC0) != 0x80) {
            counters[port->base + DROPPED] += 1;
            return;
        }
        int seq = data[2] << 8 | data[3];
        if (seq != ((port->seq + 1) & 0xFFFF))
            sequence_jump(port, seq, counters);
        else
            port->seq = seq;
        counters[port->counter] += 1;
        counters[port->counter + 1] += size;
        self->last_rx[port->slot] = now;
    }
    port_t *other = lookup(self, port->other);
    if (other == NULL || !other->has_dest)
        return; /* the other side has not said where its media goes yet */
    /* A full buffer or an unreachable peer: the packet is lost, as on a wire. */
    (void)sendto(port->other, data, (size_t)size, MSG_DONTWAIT, &other->dest.sa,
                 other->dest_len);
}

static int ensure(Forwarder *self, int fd)
{
    if (fd < self->n_ports)
        return 0;
    int size = self->n_ports ? self->n_ports : 64;
    while (size <= fd)
        size *= 2;
    port_t *grown = PyMem_Realloc(self->ports, (size_t)size * sizeof(port_t));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(grown + self->n_ports, 0, (size_t)(size - self->n_ports) * sizeof(port_t));
    self->ports = grown;
    self->n_ports = size;
    return 0;
}

/* -- methods ------------------------------------------------------------------------- */

static int Forwarder_init(Forwarder *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"counters", "slots", "clock", NULL};
    PyObject *counters, *clock;
    Py_ssize_t slots;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnO", names, &counters, &slots, &clock))
        return -1;
    if (!PyCallable_Check(clock)) {
        PyErr_SetString(PyExc_TypeError, "clock must be callable");
        return -1;
    }
    if (slots < 1) {
        PyErr_SetString(PyExc_ValueError, "slots must be >= 1");
        return -1;
    }
    if (self->has_counters) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    if (PyObject_GetBuffer(counters, &self->counters, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    self->has_counters = 1;
    self->n_counters = self->counters.len / (Py_ssize_t)sizeof(int64_t);
    if (self->n_counters < slots * SLOT_SIZE) {
        PyErr_SetString(PyExc_ValueError, "the counters are smaller than the slots need");
        return -1;
    }
    self->last_rx = PyMem_Calloc((size_t)slots, sizeof(double));
    if (self->last_rx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->slots = slots;
    Py_INCREF(clock);
    self->clock = clock;
    return 0;
}

static void release(Forwarder *self)
{
    if (self->has_counters) {
        PyBuffer_Release(&self->counters);
        self->has_counters = 0;
    }
}

static void Forwarder_dealloc(Forwarder *self)
{
    release(self);
    PyMem_Free(self->ports);
    PyMem_Free(self->last_rx);
    Py_XDECREF(self->clock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(Forwarder *self)
{
    if (!self->has_counters) {
        PyErr_SetString(PyExc_ValueError, "the forwarder is closed");
        return 0;
    }
    return 1;
}

static PyObject *Forwarder_add(Forwarder *self, PyObject *args)
{
    int fd, other, rtp;
    Py_ssize_t counter, slot;
    if (!PyArg_ParseTuple(args, "iipnn", &fd, &other, &rtp, &counter, &slot))
        return NULL;
    if (!ready(self))
        return NULL;
    if (fd < 0 || slot < 0 || slot >= self->slots || counter < slot * SLOT_SIZE ||
        counter + 2 >= (slot + 1) * SLOT_SIZE) {
        PyErr_SetString(PyExc_ValueError, "fd, counter or slot out of range");
        return NULL;
    }
    if (ensure(self, fd) < 0)
        return NULL;
    port_t *port = &self->ports[fd];
    memset(port, 0, sizeof *port);
    port->active = 1;
    port->other = other;
    port->rtp = rtp;
    port->seq = -1;
    port->counter = counter;
    port->base = slot * SLOT_SIZE;
    port->slot = slot;
    Py_RETURN_NONE;
}

static PyObject *Forwarder_remove(Forwarder *self, PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT32_MAX)
        Py_RETURN_NONE;
    port_t *port = lookup(self, (int)fd);
    if (port != NULL)
        memset(port, 0, sizeof *port);
    Py_RETURN_NONE;
}

static PyObject *Forwarder_peer(Forwarder *self, PyObject *args)
{
    int fd;
    PyObject *locked, *dest;
    if (!PyArg_ParseTuple(args, "iOO", &fd, &locked, &dest))
        return NULL;
    port_t *port = lookup_or_raise(self, fd);
    if (port == NULL)
        return NULL;
    address new_locked, new_dest;
    socklen_t locked_len = 0, dest_len = 0;
    if (locked != Py_None && parse_address(locked, &new_locked, &locked_len) < 0)
        return NULL;
    if (dest != Py_None && parse_address(dest, &new_dest, &dest_len) < 0)
        return NULL;
    port->has_locked = locked != Py_None;
    if (port->has_locked)
        port->locked = new_locked;
    port->has_dest = dest != Py_None;
    if (port->has_dest) {
        port->dest = new_dest;
        port->dest_len = dest_len;
    }
    port->seq = -1;
    Py_RETURN_NONE;
}

static PyObject *Forwarder_lock(Forwarder *self, PyObject *args)
{
    int fd;
    PyObject *source;
    if (!PyArg_ParseTuple(args, "iO", &fd, &source))
        return NULL;
    port_t *port = lookup_or_raise(self, fd);
    if (port == NULL)
        return NULL;
    address parsed;
    socklen_t len;
    if (parse_address(source, &parsed, &len) < 0)
        return NULL;
    port->locked = parsed;
    port->has_locked = 1;
    port->dest = parsed;
    port->dest_len = len;
    port->has_dest = 1;
    Py_RETURN_NONE;
}

static PyObject *Forwarder_set_slow(Forwarder *self, PyObject *args)
{
    int fd, slow;
    if (!PyArg_ParseTuple(args, "ip", &fd, &slow))
        return NULL;
    port_t *port = lookup_or_raise(self, fd);
    if (port == NULL)
        return NULL;
    port->slow = slow;
    Py_RETURN_NONE;
}

static PyObject *Forwarder_relay(Forwarder *self, PyObject *args)
{
    int fd;
    Py_buffer data;
    double now;
    if (!PyArg_ParseTuple(args, "iy*d", &fd, &data, &now))
        return NULL;
    port_t *port = ready(self) ? lookup_or_raise(self, fd) : NULL;
    if (port != NULL)
        forward(self, port, data.buf, data.len, now);
    PyBuffer_Release(&data);
    if (port == NULL)
        return NULL;
    Py_RETURN_NONE;
}

/* A slot number argument; -1 with the error set when it is not one of ours. */
static Py_ssize_t slot_of(Forwarder *self, PyObject *arg)
{
    Py_ssize_t slot = PyLong_AsSsize_t(arg);
    if (slot == -1 && PyErr_Occurred())
        return -1;
    if (slot < 0 || slot >= self->slots) {
        PyErr_SetString(PyExc_IndexError, "slot out of range");
        return -1;
    }
    return slot;
}

static PyObject *Forwarder_last_rx(Forwarder *self, PyObject *arg)
{
    Py_ssize_t slot = slot_of(self, arg);
    if (slot < 0)
        return NULL;
    return PyFloat_FromDouble(self->last_rx[slot]);
}

static PyObject *Forwarder_clear(Forwarder *self, PyObject *arg)
{
    Py_ssize_t slot = slot_of(self, arg);
    if (slot < 0)
        return NULL;
    self->last_rx[slot] = 0.0;
    Py_RETURN_NONE;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One batch of ready sockets: relay the steady state, append the rest to handed. */
static int relay_batch(Forwarder *self, struct epoll_event *events, int count, PyObject *handed)
{
    PyObject *stamp = PyObject_CallNoArgs(self->clock);
    if (stamp == NULL)
        return -1;
    double now = PyFloat_AsDouble(stamp);
    Py_DECREF(stamp);
    if (now == -1.0 && PyErr_Occurred())
        return -1;
    unsigned char buffer[PACKET_MAX];
    for (int i = 0; i < count; i++) {
        int fd = events[i].data.fd;
        port_t *port = lookup(self, fd);
        if (port == NULL)
            continue; /* closed meanwhile; the engine unregistered it */
        address source;
        socklen_t source_len = sizeof source;
        ssize_t size = recvfrom(fd, buffer, sizeof buffer, MSG_DONTWAIT, &source.sa,
                                &source_len);
        if (size < 0)
            continue; /* nothing after all, or an ICMP error from an earlier send */
        port_t *other = lookup(self, port->other);
        if (port->has_locked && !port->slow && !same_address(&port->locked, &source.sa)) {
            /* Locked, and not by this source: the engine would drop it too (a lock never
             * moves), so a flood of strangers costs no Python. */
            ((int64_t *)self->counters.buf)[port->base + DROPPED] += 1;
            continue;
        }
        if (port->slow || other == NULL || other->slow || !port->has_locked) {
            PyObject *item = Py_BuildValue("(iy#N)", fd, buffer, (Py_ssize_t)size,
                                           address_tuple(&source.sa));
            if (item == NULL || PyList_Append(handed, item) < 0) {
                Py_XDECREF(item);
                return -1;
            }
            Py_DECREF(item);
            continue;
        }
        forward(self, port, buffer, size, now);
    }
    return 0;
}

/*
 * poll(epoll_fd, control_fd, timeout_ms): relay the steady state until the engine has
 * something to do, or for timeout_ms. Returns None as soon as the control socket is
 * readable (nothing of that wait was read: the engine applies its commands first, and
 * the packets are reported again by the next poll), the packets the engine decides on
 * as (fd, data, source) once there are any, else an empty list after timeout_ms.
 */
static PyObject *Forwarder_poll(Forwarder *self, PyObject *args)
{
    int epfd, control_fd, timeout_ms, count;
    struct epoll_event events[MAX_EVENTS];
    if (!PyArg_ParseTuple(args, "iii", &epfd, &control_fd, &timeout_ms))
        return NULL;
    if (!ready(self))
        return NULL;
    PyObject *handed = PyList_New(0);
    if (handed == NULL)
        return NULL;
    int64_t deadline = monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = deadline - monotonic_ms();
        int wait_ms = left > 0 ? (int)left : 0;
        Py_BEGIN_ALLOW_THREADS
        count = epoll_wait(epfd, events, MAX_EVENTS, wait_ms);
        Py_END_ALLOW_THREADS
        if (count < 0) {
            if (errno == EINTR && PyErr_CheckSignals() == 0)
                return handed;
            if (errno != EINTR)
                PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(handed);
            return NULL;
        }
        for (int i = 0; i < count; i++) {
            if (events[i].data.fd == control_fd) {
                Py_DECREF(handed);
                Py_RETURN_NONE;
            }
        }
        if (count > 0 && relay_batch(self, events, count, handed) < 0) {
            Py_DECREF(handed);
            return NULL;
        }
        /* One batch per call when the engine asked not to wait (a zero timeout). */
        if (PyList_GET_SIZE(handed) > 0 || count == 0 || wait_ms == 0)
            return handed;
    }
}

static PyObject *Forwarder_close(Forwarder *self, PyObject *Py_UNUSED(ignored))
{
    release(self);
    Py_RETURN_NONE;
}

static PyMethodDef Forwarder_methods[] = {
    {"add", (PyCFunction)Forwarder_add, METH_VARARGS,
     "add(fd, other_fd, rtp, counter, slot): a socket of a stream, and its partner."},
    {"remove", (PyCFunction)Forwarder_remove, METH_O, "remove(fd): forget a socket."},
    {"peer", (PyCFunction)Forwarder_peer, METH_VARARGS,
     "peer(fd, locked, dest): the source locked in (or None) and where this side's "
     "packets go (or None); the sequence count restarts."},
    {"lock", (PyCFunction)Forwarder_lock, METH_VARARGS,
     "lock(fd, source): the source the engine admitted, now locked in and the destination."},
    {"set_slow", (PyCFunction)Forwarder_set_slow, METH_VARARGS,
     "set_slow(fd, slow): every packet from or to this socket goes to the engine."},
    {"relay", (PyCFunction)Forwarder_relay, METH_VARARGS,
     "relay(fd, data, now): the steady-state path for a packet the engine admitted."},
    {"last_rx", (PyCFunction)Forwarder_last_rx, METH_O,
     "last_rx(slot): the clock when the slot's last RTP packet was counted here (0: none)."},
    {"clear", (PyCFunction)Forwarder_clear, METH_O, "clear(slot): a new session in the slot."},
    {"poll", (PyCFunction)Forwarder_poll, METH_VARARGS,
     "poll(epoll_fd, control_fd, timeout_ms): relay the steady state until the engine has "
     "work or for timeout_ms; None when the control socket is readable, else the packets "
     "for the engine as (fd, data, source)."},
    {"close", (PyCFunction)Forwarder_close, METH_NOARGS,
     "close(): release the counters (the forwarder cannot be used after)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ForwarderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tollguard.media._fastpath.Forwarder",
    .tp_basicsize = sizeof(Forwarder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Forwarder(counters, slots, clock): the steady-state packet path.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Forwarder_init,
    .tp_dealloc = (destructor)Forwarder_dealloc,
    .tp_methods = Forwarder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tollguard.media._fastpath",
    .m_doc = "The embedded relay's steady-state packet path (see tollguard.media.rtp).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&ForwarderType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&ForwarderType);
    if (PyModule_AddObject(mod, "Forwarder", (PyObject *)&ForwarderType) < 0) {
        Py_DECREF(&ForwarderType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
