/*
 * The relay benchmark's traffic generator in C (tollguard/bench/relay.py, _play).
 *
 * The same streams as the Python generator: each call's 172-byte RTP packets every 20 ms,
 * the sends of a period spread over its slots, each packet carrying its call index and
 * its send time on the monotonic clock, and the one-way latency of every packet that
 * comes back. In Python the two generators fill one core near 100,000 packets a second
 * each way, before a relay in C does; here each slot's packets leave in one sendmmsg and
 * arrivals are read by recvmmsg, so the harness stays ahead of the relay it measures.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define PACKET_SIZE 172
#define HEADER_SIZE 24
#define BATCH 64
#define DRAIN_S 0.5

typedef struct {
    int64_t *values;
    size_t count;
    size_t size;
} samples_t;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int add_sample(samples_t *samples, int64_t value)
{
    if (samples->count == samples->size) {
        size_t size = samples->size ? samples->size * 2 : 65536;
        int64_t *grown = realloc(samples->values, size * sizeof(int64_t));
        if (grown == NULL)
            return -1;
        samples->values = grown;
        samples->size = size;
    }
    samples->values[samples->count++] = value;
    return 0;
}

static int compare(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t percentile(const samples_t *samples, double fraction)
{
    if (samples->count == 0)
        return 0;
    size_t index = (size_t)((double)samples->count * fraction);
    if (index > samples->count - 1)
        index = samples->count - 1;
    return samples->values[index];
}

/* Read whatever is waiting; record each packet's latency. Returns -1 on no memory. */
static int receive(int fd, unsigned char (*buffers)[2048], struct mmsghdr *messages,
                   struct iovec *vectors, samples_t *samples, uint64_t *received)
{
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            vectors[i].iov_base = buffers[i];
            vectors[i].iov_len = 2048;
            memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        int count = recvmmsg(fd, messages, BATCH, MSG_DONTWAIT, NULL);
        if (count <= 0)
            return 0;
        int64_t arrived = now_ns();
        for (int i = 0; i < count; i++) {
            if (messages[i].msg_len < HEADER_SIZE)
                continue;
            int64_t sent;
            memcpy(&sent, buffers[i] + 16, sizeof sent);
            sent = (int64_t)be64toh((uint64_t)sent);
            *received += 1;
            if (add_sample(samples, arrived - sent) < 0)
                return -1;
        }
        if (count < BATCH)
            return 0;
    }
}

static void wait_readable(int fd, int64_t until_ns)
{
    int64_t left = until_ns - now_ns();
    if (left <= 0)
        return;
    struct pollfd item = {.fd = fd, .events = POLLIN};
    struct timespec timeout = {.tv_sec = left / 1000000000, .tv_nsec = left % 1000000000};
    (void)ppoll(&item, 1, &timeout, NULL);
}

/*
 * play(fd, dests, start, duration, slots, interval): one side of every call, as
 * relay._play; returns {"sent", "received", "p50_ns", "p99_ns", "lag_s"}.
 */
static PyObject *play(PyObject *module, PyObject *args)
{
    (void)module;
    int fd, slots;
    PyObject *dests;
    double start, duration, interval;
    if (!PyArg_ParseTuple(args, "iO!ddid", &fd, &PyList_Type, &dests, &start, &duration,
                          &slots, &interval))
        return NULL;
    Py_ssize_t calls = PyList_GET_SIZE(dests);
    if (slots < 1 || interval <= 0 || calls > 1000000) {
        PyErr_SetString(PyExc_ValueError, "slots, interval or calls out of range");
        return NULL;
    }
    struct sockaddr_in *addresses = calloc((size_t)calls + 1, sizeof *addresses);
    uint16_t *seqs = calloc((size_t)calls + 1, sizeof *seqs);
    unsigned char (*buffers)[2048] = malloc(BATCH * sizeof *buffers);
    struct mmsghdr *messages = calloc(BATCH, sizeof *messages);
    struct iovec *vectors = calloc(BATCH, sizeof *vectors);
    samples_t samples = {0};
    PyObject *result = NULL;
    if (!addresses || !seqs || !buffers || !messages || !vectors) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < calls; i++) {
        const char *host;
        int port;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(dests, i), "si", &host, &port))
            goto done;
        addresses[i].sin_family = AF_INET;
        addresses[i].sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &addresses[i].sin_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not an IPv4 address: %s", host);
            goto done;
        }
    }
    Py_ssize_t per_slot = (calls + slots - 1) / slots;
    uint64_t sent = 0, received = 0;
    int64_t lag = 0, step = (int64_t)(interval / slots * 1e9);
    int64_t due = (int64_t)(start * 1e9), end = (int64_t)((start + duration) * 1e9);
    int slot = 0, failed = 0;
    unsigned char payload[PACKET_SIZE];
    memset(payload, 0xd5, sizeof payload);

    Py_BEGIN_ALLOW_THREADS
    /* Whatever a previous run left in the socket is not this run's. */
    while (recv(fd, buffers[0], 2048, MSG_DONTWAIT) >= 0)
        ;
    for (;;) {
        int64_t now = now_ns();
        if (now >= due) {
            if (due >= end)
                break;
            if (now - due > lag)
                lag = now - due;
            Py_ssize_t low = slot * per_slot, high = low + per_slot;
            if (high > calls)
                high = calls;
            for (Py_ssize_t first = low; first < high; first += BATCH) {
                int count = (int)(high - first < BATCH ? high - first : BATCH);
                int64_t stamp = (int64_t)htobe64((uint64_t)now_ns());
                for (int i = 0; i < count; i++) {
                    Py_ssize_t index = first + i;
                    uint16_t seq = ++seqs[index];
                    unsigned char *packet = buffers[i];
                    memcpy(packet, payload, PACKET_SIZE);
                    packet[0] = 0x80;
                    packet[1] = 8;
                    uint16_t seq_be = htons(seq);
                    uint32_t ts_be = htonl((uint32_t)seq * 160);
                    uint32_t index_be = htonl((uint32_t)index);
                    memcpy(packet + 2, &seq_be, 2);
                    memcpy(packet + 4, &ts_be, 4);
                    memcpy(packet + 8, &index_be, 4);
                    memcpy(packet + 12, &index_be, 4);
                    memcpy(packet + 16, &stamp, 8);
                    vectors[i].iov_base = packet;
                    vectors[i].iov_len = PACKET_SIZE;
                    memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
                    messages[i].msg_hdr.msg_name = &addresses[index];
                    messages[i].msg_hdr.msg_namelen = sizeof addresses[index];
                    messages[i].msg_hdr.msg_iov = &vectors[i];
                    messages[i].msg_hdr.msg_iovlen = 1;
                }
                int done = 0;
                while (done < count) {
                    int result = sendmmsg(fd, messages + done, (unsigned)(count - done), 0);
                    /* A packet the kernel refuses is counted as sent, and so as lost. */
                    done += result > 0 ? result : 1;
                }
                sent += (uint64_t)count;
            }
            slot = (slot + 1) % slots;
            due += step;
            continue;
        }
        wait_readable(fd, due);
        if (receive(fd, buffers, messages, vectors, &samples, &received) < 0) {
            failed = 1;
            break;
        }
    }
    int64_t stop_at = now_ns() + (int64_t)(DRAIN_S * 1e9);
    while (!failed && now_ns() < stop_at) {
        wait_readable(fd, stop_at);
        if (receive(fd, buffers, messages, vectors, &samples, &received) < 0)
            failed = 1;
    }
    if (!failed)
        qsort(samples.values, samples.count, sizeof(int64_t), compare);
    Py_END_ALLOW_THREADS

    if (failed)
        PyErr_NoMemory();
    else
        result = Py_BuildValue(
            "{s:K,s:K,s:L,s:L,s:d}", "sent", (unsigned long long)sent, "received",
            (unsigned long long)received, "p50_ns", (long long)percentile(&samples, 0.50),
            "p99_ns", (long long)percentile(&samples, 0.99), "lag_s", (double)lag / 1e9);

done: /* result is NULL unless the run went well */
    free(addresses);
    free(seqs);
    free(buffers);
    free(messages);
    free(vectors);
    free(samples.values);
    return result;
}

static PyMethodDef methods[] = {
    {"play", play, METH_VARARGS,
     "play(fd, dests, start, duration, slots, interval): one side of every call."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tollguard.bench._rtpgen",
    .m_doc = "The relay benchmark's traffic generator (see tollguard.bench.relay).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__rtpgen(void) { return PyModule_Create(&module); }
