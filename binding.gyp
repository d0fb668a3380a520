{
  "targets": [
    {
      "target_name": "vlmkit",
      "sources": ["<!@(node -p \"require('fs').readdirSync('native',{recursive:true}).filter(f=>f.endsWith('.cc')).map(f=>'native/'+f).join(' ')\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-ffp-contract=fast", "-Wall", "-Wno-unused-function"],
      "conditions": [
        ["OS=='linux'", {
          "libraries": ["-lopenblas", "-lpthread"],
          "include_dirs": ["/usr/include/x86_64-linux-gnu", "/usr/include/openblas"]
        }],
        ["OS=='mac'", {
          "defines": ["VLMKIT_ACCELERATE", "ACCELERATE_NEW_LAPACK"],
          "libraries": ["-framework Accelerate"],
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fexceptions"]
          }
        }]
      ]
    }
  ]
}
