{
  "targets": [
    {
      "target_name": "dgram_ring",
      "sources": ["native/addon.cc", "native/batch.cc", "native/recycle.cc", "native/cmsg.cc", "native/coalesce.cc", "native/multicast.cc", "native/slab.cc", "native/sockaddr.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: while a worker is terminated,
      # N-API calls fail; node-addon-api would make that a fatal error.
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='win'", {
          "sources": ["native/backend_iocp.cc", "native/iocp_port.cc", "native/send_win.cc", "native/win_errors.cc", "native/win_socket.cc"],
          "defines": ["_WIN32_WINNT=0x0A00", "WIN32_LEAN_AND_MEAN", "NOMINMAX"],
          "libraries": ["-lws2_32", "-lmswsock"],
          "msvs_settings": {
            "VCCLCompilerTool": { "ExceptionHandling": 0, "AdditionalOptions": ["/std:c++17"] }
          }
        }],
        ["OS!='win'", {
          "sources": ["native/backend_mmsg.cc", "native/posix_socket.cc", "native/send_posix.cc"]
        }],
        ["OS=='linux'", {
          "sources": ["native/backend_uring.cc", "native/uring.cc"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "10.15"
          }
        }]
      ]
    }
  ]
}
