// libLibTorchSharp.so (TorchSharp 0.107) is built with GCC 13 and asks for std::ios_base_library_init()@GLIBCXX_3.4.32,
// which GCC 13 emits so iostreams get initialised once per program. Debian 12's libstdc++ (GCC 12) predates it.
// The build marks that version requirement weak and this shim, loaded RTLD_GLOBAL first, supplies the symbol
// with the same effect: construct the iostreams' ios_base::Init once.
#include <ios>

namespace std
{
    void ios_base_library_init()
    {
        static ios_base::Init init;
    }
}
