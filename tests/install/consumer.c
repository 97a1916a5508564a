/* A program built against an installed scorekit (tests/install_consumer.sh),
 * as C or as C++: builds f = sum(softplus(x W^T)) and its gradient, runs it,
 * checks the values, the version and the error channel, and reads a gzipped
 * IDX file (so the link brings zlib). Exit 0 on success. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <scorekit/scorekit.h>

#define N 4
#define K 3
#define M 5

static int fails;

static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "consumer: %s\n", what);
    fails++;
  }
}

int main(void) {
  printf("scorekit %s (headers %s)\n", sk_version(), SK_VERSION_STRING);
  expect(strcmp(sk_version(), SK_VERSION_STRING) == 0, "sk_version() differs from the headers");
#ifdef EXPECT_VERSION
  expect(strcmp(SK_VERSION_STRING, EXPECT_VERSION) == 0,
         "SK_VERSION_STRING differs from the package version " EXPECT_VERSION);
#endif
  expect(SK_VERSION == SK_VERSION_AT(SK_VERSION_MAJOR, SK_VERSION_MINOR, SK_VERSION_PATCH),
         "SK_VERSION");

  sk_set_num_threads(2);
  expect(sk_get_num_threads() == 2, "sk_get_num_threads() after sk_set_num_threads(2)");
  sk_set_num_threads(0);

  float x[N * K], w[M * K];
  for (int i = 0; i < N * K; i++) x[i] = 0.25f * (float)(i % 7) - 0.6f;
  for (int i = 0; i < M * K; i++) w[i] = 0.1f * (float)((i * 5) % 11) - 0.45f;
  const int64_t xs[2] = {N, K}, ws[2] = {M, K};

  sk_graph *g = sk_graph_new();
  expect(g != NULL, "sk_graph_new");
  if (!g) return 1;
  sk_node xn = sk_input(g, "x", 2, xs);
  sk_node wn = sk_param(g, "w", 2, ws, w);
  sk_node f = sk_sum_all(g, sk_softplus(g, sk_matmul(g, xn, wn, 0, 1)));
  sk_node dx = SK_NONE;
  expect(sk_grad(g, f, SK_NONE, 1, &xn, &dx) == SK_OK, "sk_grad");
  const sk_node outs[2] = {f, dx};
  sk_status st = sk_graph_compile(g, 2, outs);
  expect(st == SK_OK, sk_last_error());
  if (st == SK_OK) {
    memcpy(sk_graph_data(g, xn), x, sizeof x);
    expect(sk_graph_run(g) == SK_OK, "sk_graph_run");
    /* f = sum_ij softplus(z_ij), df/dx_ik = sum_j sigmoid(z_ij) w_jk. */
    double fr = 0, dr[N * K] = {0};
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) {
        double z = 0;
        for (int k = 0; k < K; k++) z += (double)x[i * K + k] * w[j * K + k];
        fr += log1p(exp(z));
        for (int k = 0; k < K; k++) dr[i * K + k] += w[j * K + k] / (1 + exp(-z));
      }
    const float *fv = sk_graph_data(g, f), *dv = sk_graph_data(g, dx);
    expect(fabs(fv[0] - fr) <= 1e-5 * fabs(fr), "f differs from the reference");
    for (int i = 0; i < N * K; i++)
      expect(fabs(dv[i] - dr[i]) <= 1e-5, "df/dx differs from the reference");
    printf("f = %.6f (reference %.6f)\n", fv[0], fr);
  }
  sk_graph_free(g);

  /* A shape error: the status and a message reach the caller. */
  sk_graph *h = sk_graph_new();
  const int64_t as[2] = {2, 3}, bs[2] = {4, 5};
  sk_node bad = sk_add(h, sk_input(h, "a", 2, as), sk_input(h, "b", 2, bs));
  expect(sk_graph_compile(h, 1, &bad) != SK_OK, "compiling a shape error succeeded");
  expect(sk_last_error()[0] != '\0', "no message for a shape error");
  sk_graph_free(h);

  /* gzip(00 00 08 01 | 00 00 00 03 | 07 08 09): uint8, shape (3). */
  static const unsigned char idx_gz[] = {
      0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60,
      0xe0, 0x60, 0x64, 0x60, 0x60, 0x60, 0x66, 0xe7, 0xe0, 0x04, 0x00, 0xad,
      0x98, 0x0a, 0xba, 0x0b, 0x00, 0x00, 0x00};
  char path[64];
  snprintf(path, sizeof path, "/tmp/sk_consumer_%d.idx.gz", (int)getpid());
  FILE *gz = fopen(path, "wb");
  expect(gz && fwrite(idx_gz, 1, sizeof idx_gz, gz) == sizeof idx_gz && fclose(gz) == 0,
         "cannot write the IDX file");
  sk_tensor *t = NULL;
  sk_dtype dt = SK_DTYPE_COUNT;
  st = sk_idx_load(path, &t, &dt);
  expect(st == SK_OK, sk_last_error());
  if (st == SK_OK) {
    expect(dt == SK_DTYPE_U8 && sk_tensor_ndim(t) == 1 && sk_tensor_shape(t)[0] == 3 &&
               sk_tensor_cdata(t)[0] == 7 && sk_tensor_cdata(t)[2] == 9,
           "the gzipped IDX file read back wrong");
    sk_tensor_free(t);
  }
  remove(path);
  return fails ? 1 : 0;
}
