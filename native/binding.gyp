{
  "targets": [
    {
      "target_name": "ring_native",
      "sources": ["src/ring_native.cc"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "<!(echo ${RING_NATIVE_MARCH:--march=native})", "-fno-math-errno", "-ffp-contract=off", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
